"""Start ``taskplane dev`` as a real process on a free port for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DevServer:
    url: str
    api_key: str
    other_key: str
    process: subprocess.Popen
    #: what it printed on starting (up to "Ctrl-C stops it.")
    banner: str = ""


def start_dev(port: int, *extra: str) -> subprocess.Popen:
    env = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "taskplane", "dev", "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"taskplane dev exited early:\n{process.stdout.read() if process.stdout else ''}"
            )
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("taskplane dev did not become healthy in time")


def read_banner(process: subprocess.Popen) -> str:
    """The lines it printed on starting (it prints them once it serves; the rest is read by stop)."""
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "Ctrl-C stops it." in line:
            break
    return "".join(lines)


def stop(process: subprocess.Popen) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return process.returncode, out or ""


def _dev_server(tmp_path_factory: pytest.TempPathFactory, *extra: str) -> Iterator[DevServer]:
    functions = tmp_path_factory.mktemp("fn") / "functions.py"
    functions.write_text(
        "def greet(event, context):\n"
        "    return {'greeting': 'hello ' + str(event['payload']['name'])}\n\n"
        "def explode(event, context):\n"
        "    raise RuntimeError('boom')\n"
    )
    port = free_port()
    process = start_dev(port, "--tenant", "other=other-key", "--functions", str(functions), *extra)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield DevServer(
            url=url, api_key="dev-key", other_key="other-key", process=process, banner=read_banner(process)
        )
    finally:
        stop(process)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """``taskplane dev`` on its default backend (SQLite, in memory)."""
    yield from _dev_server(tmp_path_factory)


@pytest.fixture(scope="session")
def dev_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """``taskplane dev --backend moto``: the AWS adapters on moto (tests/e2e/test_dev_moto.py)."""
    yield from _dev_server(tmp_path_factory, "--backend", "moto")
