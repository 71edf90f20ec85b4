"""The Huey side of bench/local_throughput.py: an echo task on Huey's SQLite storage, and its consumer.

Imported by name from both processes (Huey finds a task by its module and function name).
"""

from __future__ import annotations

import time
from typing import Any


def app(path: str) -> tuple[Any, Any]:
    """A SqliteHuey on ``path`` and its ``echo`` task (payload in; payload, start and finish times out)."""
    from huey import SqliteHuey

    huey = SqliteHuey(name="bench", filename=path)

    @huey.task(name="echo")
    def echo(payload: dict[str, Any]) -> dict[str, Any]:
        started = time.time()
        return {"payload": payload, "started_at": started, "finished_at": time.time()}

    return huey, echo


def consume(path: str, workers: int) -> None:
    """Run Huey's consumer on ``path`` with ``workers`` threads until terminated."""
    huey, _ = app(path)
    huey.create_consumer(workers=workers, worker_type="thread", periodic=False).run()


def version() -> str:
    from importlib.metadata import version as installed

    return installed("huey")
