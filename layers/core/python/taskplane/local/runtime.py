"""``taskplane dev``: the whole platform in one process, no AWS account needed.

Two backends for the platform's stores, queues and event bus (wiring chooses the adapters; the
handlers and services are the same): ``sqlite`` (the default: one SQLite database, in memory or the
``--db`` file) and ``moto`` (DynamoDB, SQS and EventBridge in moto, as the AWS adapters run in AWS).
On both, workflows run their compiled ASL in moto's Step Functions (which calls the step function
in-process), Lambda targets are local functions behind moto's Lambda, and large values go to moto's
S3 behind a loopback endpoint their presigned URLs name.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_API_KEY = "dev-key"
DEFAULT_TENANT = "default"
REGION = "us-east-1"
#: Worker batches in flight per lane (the event source mapping's MaximumConcurrency in AWS): `high`
#: gets three times the workers of `low`, so under load it is served ahead (tests/integration/test_backpressure.py).
LANE_CONCURRENCY = {"high": 6, "default": 4, "low": 2}
#: The shard rules' period: EventBridge's rate(1 minute).
RULE_PERIOD_S = 60.0
#: The backends ``taskplane dev --backend`` takes; the first is the default.
BACKENDS = ("sqlite", "moto")
#: On a database file, how long a stop waits for the worker batches in flight to finish (what
#: finishes is acknowledged and never runs again after a restart).
DRAIN_S = 10.0
#: How often the SQLite backend deletes expired rows (DynamoDB's TTL process, which takes days).
PURGE_PERIOD_S = 300.0


def _local_environment() -> None:
    """Fake credentials and quiet observability defaults; never overrides what the user set."""
    defaults = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_SERVICE_NAME": "taskplane",
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    # Never reach a real AWS endpoint from the local runtime.
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)


@dataclass
class LocalRuntime:
    """Start and stop the local platform in this process (used by ``taskplane dev``, tests and bench)."""

    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str = DEFAULT_API_KEY
    tenants: dict[str, str] = field(default_factory=dict)  # tenant name -> API key
    functions_file: str | None = None
    #: AWS's defaults for private HTTP and target allow-lists (local/policy.py); the environment still wins
    strict: bool = False
    #: an OTLP/HTTP collector to export metrics and traces to (``--otlp``; over TASKPLANE_OTLP_ENDPOINT)
    otlp: str | None = None
    #: where the stores, lanes and bus live: "sqlite" (default) or "moto" (the AWS adapters on moto)
    backend: str = "sqlite"
    #: the SQLite database file (state kept across restarts); None: in memory, for this process only
    db: str | None = None
    #: what a reopened database file brought back (local/restore.py), after start
    restored: Any = None
    pollers: list[Any] = field(default_factory=list)
    #: the settings in force and where each policy value came from (filled by start)
    settings: Any = None
    policy_origin: dict[str, str] = field(default_factory=dict)
    _mock: Any = None
    _server: Any = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _uninstall: Any = None
    _uninstall_step: Any = None
    _session: Any = None
    _wake_events: dict[int, threading.Event] = field(default_factory=dict)
    _saved_environ: dict[str, str] | None = None
    _s3_server: Any = None
    _sqlite: Any = None
    _db_lock: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def key_ids(self) -> dict[str, str]:
        keys = {self.api_key: DEFAULT_TENANT}
        keys.update({key: name for name, key in self.tenants.items()})
        return keys

    def start(self) -> LocalRuntime:
        # What start adds to the environment (fake credentials, the settings) is taken back by stop,
        # so a second runtime in this process reads only what the user set.
        self._saved_environ = dict(os.environ)
        _local_environment()
        import boto3
        from moto import mock_aws

        from taskplane import wiring
        from taskplane.local import moto_patches, workflows
        from taskplane.local.gateway import make_server
        from taskplane.local.handlers import load_handler
        from taskplane.local.policy import local_settings
        from taskplane.local.poller import LanePoller
        from taskplane.local.resources import create_resources
        from taskplane.settings import ENV_OTLP_ENDPOINT

        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.db is not None and self.backend != "sqlite":
            raise ValueError("--db keeps the SQLite backend's state: it cannot go with --backend moto")
        moto_patches.apply()
        # Step Functions executes ASL (workflows), calling the step function in-process.
        self._mock = mock_aws(config=workflows.MOCK_CONFIG)  # type: ignore[call-overload]  # a partial config is fine
        self._mock.start()
        session = boto3.session.Session(region_name=REGION)
        self._session = session
        env = dict(os.environ)
        if self.otlp:
            env[ENV_OTLP_ENDPOINT] = self.otlp
        try:
            if self.backend == "sqlite":
                from taskplane.local.resources import create_sqlite_resources

                self._db_lock = _lock_file(self.db) if self.db else None
                self._sqlite = wiring.sqlite_backend(self.db or ":memory:")
                resources = create_sqlite_resources(self._sqlite, session)
            else:
                resources = create_resources(session)
            # Policy from the environment (or --strict) over the friendly local defaults: local/policy.py.
            settings, self.policy_origin = local_settings(resources, env, strict=self.strict)
        except BaseException:
            self._close_sqlite()
            self._mock.stop()
            self._mock = None
            os.environ.clear()
            os.environ.update(self._saved_environ)
            raise
        if self.otlp:
            self.policy_origin[ENV_OTLP_ENDPOINT] = "--otlp"
        # Presigned URLs for large payloads and results must reach this process's S3 from outside
        # it: a moto server on loopback shares the in-process state (NOTES-AWS-LOCAL.md).
        self._s3_server = _start_s3_endpoint()
        host, s3_port = self._s3_server.get_host_and_port()
        settings = settings.model_copy(update={"blob_url_endpoint": f"http://{host}:{s3_port}"})
        settings, self._uninstall_step = workflows.install_step_function(session, settings)
        self.settings = settings
        os.environ.update(settings.to_env())
        if self.functions_file:
            from taskplane.local.lambdas import (
                create_local_functions,
                install_local_lambdas,
                load_functions_file,
            )

            functions = load_functions_file(self.functions_file)
            create_local_functions(session.client("lambda"), functions)
            self._uninstall = install_local_lambdas(functions)
        wiring.use(wiring.build(settings, session=session, sqlite=self._sqlite))
        workflows.release_gates_directly(wiring.platform(), REGION)
        if self._sqlite is not None and self.db:
            from taskplane.local.restore import restore

            self.restored = restore(wiring.platform(), self._sqlite)
        api = load_handler("api")
        worker = load_handler("worker")
        self._server = make_server(self.host, self.port, api.lambda_handler, self.key_ids())
        self.port = self._server.server_address[1]
        thread = threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True)
        thread.start()
        self._threads.append(thread)
        tick = load_handler("tick")
        # Wakes: what an asynchronous invoke of the tick function does in AWS, a tick loop run now.
        self._wake_events = {shard: threading.Event() for shard in range(settings.wheel_shards)}
        wiring.platform().wakes.wake = lambda shard: self._wake(tick.lambda_handler, shard)
        for shard in range(settings.wheel_shards):
            thread = threading.Thread(
                target=self._tick_loop, args=(tick.lambda_handler, shard), daemon=True, name=f"tick-{shard}"
            )
            thread.start()
            self._threads.append(thread)
        sqs = self._sqlite.queues if self._sqlite is not None else session.client("sqs")
        for lane, url in settings.queue_urls.items():
            poller = LanePoller(
                sqs,
                url,
                worker.lambda_handler,
                concurrency=LANE_CONCURRENCY.get(lane, 2),
                wait_for_messages=(
                    self._sqlite.queues.wait_for_messages
                    if self._sqlite is not None
                    else moto_patches.queue_waiter(url)
                ),
            )
            poller.start()
            self.pollers.append(poller)
        if self._sqlite is not None:
            thread = threading.Thread(target=self._purge_loop, daemon=True, name="ttl")
            thread.start()
            self._threads.append(thread)
        return self

    def _purge_loop(self) -> None:
        """DynamoDB's TTL deletion for the SQLite backend: expired rows go, a few minutes late."""
        from taskplane import wiring

        stop = wiring.platform().stop
        while not stop.wait(PURGE_PERIOD_S):
            try:
                self._sqlite.db.purge_expired(int(time.time()))
            except Exception:  # the next period tries again
                continue

    def _close_sqlite(self) -> None:
        if self._sqlite is not None:
            self._sqlite.db.close()
            self._sqlite = None
        if self._db_lock is not None:
            self._db_lock.close()
            self._db_lock = None

    def _wake(self, handler: Any, shard: int) -> None:
        """A wake: the shard's loop runs its tick now; a shard without a loop (draining, after the
        shard count changed) gets one run of its own, as an asynchronous invoke would in AWS."""
        from taskplane.local.context import LocalContext

        event = self._wake_events.get(shard)
        if event is not None:
            event.set()
            return
        context = LocalContext(function_name="taskplane-tick", timeout_s=70)
        threading.Thread(
            target=handler,
            args=({"shard": shard, "woken": True}, context),
            daemon=True,
            name=f"drain-{shard}",
        ).start()

    def _tick_loop(self, handler: Any, shard: int) -> None:
        """What the shard's rate(1 minute) rule and the wakes do in AWS: run the tick once a minute,
        and at once when something woke it (an entry due soon, a busy tick handing over)."""
        from taskplane import wiring
        from taskplane.local.context import LocalContext

        stop = wiring.platform().stop
        woken = self._wake_events[shard]
        while not stop.is_set():
            woken.clear()
            try:
                handler({"shard": shard}, LocalContext(function_name="taskplane-tick", timeout_s=70))
            except Exception:  # a failed tick is retried like a failed scheduled invocation
                stop.wait(1)
            next_rule = time.monotonic() + RULE_PERIOD_S
            while not stop.is_set() and not woken.wait(min(0.5, max(0.0, next_rule - time.monotonic()))):
                if time.monotonic() >= next_rule:
                    break

    def stop(self) -> None:
        from taskplane import wiring

        wiring.platform().stop.set()
        for thread in self._threads:
            if thread.name.startswith("tick-"):
                thread.join(5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for poller in self.pollers:
            # On a file, what is running may finish and be acknowledged first (no second run after a restart).
            poller.stop(drain_s=DRAIN_S if self.db else 0.0)
        if self._session is not None:
            from taskplane.local.workflows import stop_executions

            stop_executions(self._session)
        if self._uninstall:
            self._uninstall()
        if self._uninstall_step:
            self._uninstall_step()
        wiring.use(None)
        self._close_sqlite()
        if self._s3_server is not None:
            self._s3_server.stop()
            self._s3_server = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)
            self._saved_environ = None


def _lock_file(path: str) -> Any:
    """Hold an exclusive lock on ``path`` for as long as this runtime uses it: two runtimes on one
    file would each take the other's messages for a dead process's."""
    import fcntl

    try:
        handle = open(path, "a+b")  # noqa: SIM115  # held open until stop
    except OSError as exc:
        raise DatabaseUnusable(f"cannot open --db {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DatabaseUnusable(
            f"--db {path} is in use by another taskplane dev: stop it or pick another file"
        ) from None
    return handle


class DatabaseUnusable(RuntimeError):
    """The ``--db`` file cannot be opened, or another running ``taskplane dev`` holds it."""


def _start_s3_endpoint() -> Any:
    """A moto server on loopback for the URLs of uploads and large results (quiet: no access log)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    return server


def banner(rt: LocalRuntime) -> str:
    if rt.backend == "sqlite":
        where = (
            f"SQLite file {rt.db} (state kept across restarts)"
            if rt.db
            else "SQLite in memory (--db FILE keeps it)"
        )
    else:
        where = "moto (the AWS adapters: DynamoDB, SQS, EventBridge)"
    lines = [
        f"taskplane dev: serving {rt.url}",
        f"  backend: {where}",
        *_restored_lines(rt.restored),
        f"  API key: {rt.api_key}   (tenant {DEFAULT_TENANT})",
    ]
    lines += [f"  API key: {key}   (tenant {name})" for name, key in rt.tenants.items()]
    if rt.settings is not None:
        from taskplane.local.policy import describe

        lines += ["  rules in force (set TASKPLANE_* variables or --strict to change them):"]
        lines += describe(rt.settings, rt.policy_origin)
    lines += [
        f"  dashboard: {rt.url}/   (sign in with the API key)",
        f"  docs:    {rt.url}/v1/docs",
        "  try:",
        f"    curl -s -X POST {rt.url}/v1/tasks -H 'x-api-key: {rt.api_key}' \\",
        '      -d \'{"target":{"type":"builtin","name":"echo"},"payload":{"hello":"world"}}\'',
        "  Ctrl-C stops it.",
    ]
    return "\n".join(lines)


def _restored_lines(report: Any) -> list[str]:
    if report is None:
        return []
    lines = [
        f"  reopened: {report.workflows} workflows ({report.versions} versions) published again, "
        f"{report.runs_resumed} runs resumed, {report.messages_released} deliveries back on their lanes"
    ]
    lines += [f"  run {run_id} not resumed: {why}" for run_id, why in report.runs_waiting.items()]
    return lines


def run_dev(
    host: str = "127.0.0.1",
    port: int = 8080,
    api_key: str | None = None,
    tenants: dict[str, str] | None = None,
    functions_file: str | None = None,
    strict: bool = False,
    otlp: str | None = None,
    backend: str = "sqlite",
    db: str | None = None,
) -> int:
    """Run the local runtime until Ctrl-C (SIGINT) or SIGTERM; returns the exit code."""
    from taskplane.adapters.sqlite.db import SchemaMismatch
    from taskplane.local.policy import SettingError

    runtime = LocalRuntime(
        host=host,
        port=port,
        api_key=api_key or DEFAULT_API_KEY,
        tenants=dict(tenants or {}),
        functions_file=functions_file,
        strict=strict,
        otlp=otlp,
        backend=backend,
        db=db,
    )
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    # Handlers first: the gateway answers as soon as it is up, and a Ctrl-C from then on must be clean.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        runtime.start()
    except SettingError as exc:
        print(f"taskplane dev: {exc}", file=sys.stderr)
        return 1
    except (DatabaseUnusable, SchemaMismatch) as exc:
        print(f"taskplane dev: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:  # not a SQLite file, a read-only directory, ...
        print(f"taskplane dev: cannot use --db {db}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"taskplane dev: cannot listen on {host}:{port}: {exc.strerror or exc}. Pick another port with --port.",
            file=sys.stderr,
        )
        return 1
    print(banner(runtime), flush=True)
    while not stop.wait(0.5):
        pass
    print("taskplane dev: stopping", flush=True)
    runtime.stop()
    print("taskplane dev: stopped", flush=True)
    return 0
