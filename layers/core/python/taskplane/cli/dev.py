"""``taskplane dev``: the whole platform in this process, on SQLite (or moto) instead of AWS."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from taskplane.cli.base import Context, UsageError, add_command, http_url, key_value, port
from taskplane.client import API_KEY_ENV


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "dev",
        help="run the local runtime (no AWS account needed)",
        description=(
            "Run the whole platform in one process: the HTTP API, the tick, the workers and Step Functions.\n"
            "Tasks, lanes and every record live in SQLite (in memory, or the --db file across restarts);\n"
            "--backend moto puts them in moto's DynamoDB, SQS and EventBridge, as the AWS adapters run.\n"
            "Prints the URL and the API key; Ctrl-C stops it."
        ),
        examples="""
            taskplane dev
            taskplane dev --db taskplane.db   # state kept across restarts
            taskplane dev --backend moto      # the AWS adapters on moto (fidelity, ~30x slower)
            taskplane dev --port 9000 --api-key dev-key
            taskplane dev --tenant acme=acme-key --tenant globex=globex-key
            taskplane dev --functions examples/functions.py
            taskplane dev --strict        # AWS's defaults: private HTTP refused, targets only from allow-lists
            taskplane dev --otlp http://localhost:4318   # metrics and traces to an OpenTelemetry collector too
            TASKPLANE_TARGET_ALLOWLISTS='{"default": ["lambda:orders-*"]}' taskplane dev --strict
        """,
        handler=_cmd_dev,
        common=False,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    parser.add_argument("--port", type=port, default=8080, help="port to listen on (default %(default)s)")
    parser.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        metavar="KEY",
        help=f"API key of the default tenant (env {API_KEY_ENV}; otherwise the runtime picks one)",
    )
    parser.add_argument(
        "--tenant",
        action="append",
        default=[],
        type=key_value("NAME=KEY"),
        metavar="NAME=KEY",
        help="add a tenant with its API key (repeatable)",
    )
    parser.add_argument(
        "--functions",
        metavar="FILE",
        help="Python file whose functions serve as local Lambda targets",
    )
    parser.add_argument(
        "--otlp",
        metavar="URL",
        type=http_url,
        help=(
            "also export metrics and traces over OTLP/HTTP to this collector (its base URL: /v1/traces "
            "and /v1/metrics are appended); the same as TASKPLANE_OTLP_ENDPOINT, which it overrides"
        ),
    )
    parser.add_argument(
        "--backend",
        choices=("sqlite", "moto"),
        default="sqlite",
        help=(
            "where tasks, lanes, the wheel and every record live: sqlite (the default) or moto "
            "(DynamoDB, SQS and EventBridge on moto, as the AWS adapters run them)"
        ),
    )
    parser.add_argument(
        "--db",
        metavar="FILE",
        help=(
            "keep the SQLite backend's state in FILE across restarts (made when missing); without it "
            "state lives as long as the process"
        ),
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help=(
            "AWS's defaults instead of the friendly local ones: HTTP targets may not name private "
            "addresses and tenants call only what TASKPLANE_TARGET_ALLOWLISTS names (variables set in "
            "the environment always win)"
        ),
    )


def _cmd_dev(args: argparse.Namespace, ctx: Context) -> int:
    api_key = getattr(args, "api_key", None) or os.environ.get(API_KEY_ENV) or None
    tenants: dict[str, str] = {}
    owners: dict[str, str] = {"(default tenant)": api_key} if api_key else {}
    for name, key in args.tenant:
        if not key:
            raise UsageError(f"argument --tenant: tenant {name!r} has an empty key")
        if name in tenants:
            raise UsageError(f"argument --tenant: tenant {name!r} is given twice")
        clash = next((owner for owner, k in owners.items() if k == key), None)
        if clash:
            raise UsageError(f"argument --tenant: tenant {name!r} has the same key as {clash}")
        tenants[name] = owners[name] = key
    if args.functions and not Path(args.functions).is_file():
        raise UsageError(f"argument --functions: no such file: {args.functions}")
    if args.db is not None and args.backend != "sqlite":
        raise UsageError("argument --db: keeps the SQLite backend's state; it cannot go with --backend moto")
    if args.db is not None and (not args.db or Path(args.db).is_dir()):
        raise UsageError(f"argument --db: not a file name: {args.db!r}")
    missing = local_runtime_missing()
    if missing:
        print(
            f"error: taskplane dev needs the local runtime's packages ({missing} is not installed): "
            "pip install 'taskplane[local]'",
            file=sys.stderr,
        )
        return 1
    try:
        from taskplane.local.runtime import run_dev
    except ModuleNotFoundError as exc:
        print(
            f"error: the local runtime cannot start: module {exc.name!r} is missing; "
            "pip install 'taskplane[local]'",
            file=sys.stderr,
        )
        return 1
    try:
        code = run_dev(
            host=args.host,
            port=args.port,
            api_key=api_key,
            tenants=tenants,
            functions_file=args.functions,
            strict=args.strict,
            otlp=args.otlp,
            backend=args.backend,
            db=args.db,
        )
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how dev is meant to stop
    return code if isinstance(code, int) else 0


def local_runtime_missing() -> str | None:
    """The first package ``taskplane dev`` needs that is not installed (the ``local`` extra), if any."""
    import importlib.util

    for module in ("moto", "boto3"):
        if importlib.util.find_spec(module) is None:
            return module
    return None
