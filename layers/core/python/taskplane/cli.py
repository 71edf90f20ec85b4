"""The ``taskplane`` command: the local runtime (``taskplane dev``) and a CLI over the HTTP API.

Adding a command group
----------------------
A group is a module with ``register(subparsers)`` that adds its commands with :func:`add_command`
(and :func:`add_group` for nested ones such as ``taskplane workflow put``). A command's handler is
``handler(args, ctx) -> int``: ``ctx`` is a :class:`Context` with the API client, the consoles and
:meth:`Context.show` (raw JSON under ``--json``, a rich rendering otherwise). Raise :class:`UsageError`
for bad input (exit 2); :class:`~taskplane.client.TaskplaneError` is printed and exits 1. List the
module in ``GROUP_MODULES``; a listed module that does not exist yet is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from taskplane import __version__
from taskplane.client import API_KEY_ENV, DEFAULT_URL, URL_ENV, Client, TaskplaneError, WaitTimeoutError
from taskplane.domain.states import TaskState

#: Modules holding more command groups, each with ``register(subparsers)``.
GROUP_MODULES: tuple[str, ...] = ("taskplane.cli_schedules", "taskplane.cli_workflows")

Handler = Callable[[argparse.Namespace, "Context"], int]

TARGET_FORMS = "builtin:NAME, lambda:FUNCTION, http:URL, sqs:QUEUE_URL or eventbridge:BUS"
STATES: tuple[str, ...] = tuple(s.value for s in TaskState)
_STATE_STYLES = {
    "SCHEDULED": "blue",
    "PENDING": "blue",
    "RUNNING": "cyan",
    "RETRYING": "yellow",
    "TIMED_OUT": "yellow",
    "SUCCEEDED": "green",
    "FAILED": "red",
    "CANCELLED": "magenta",
}
#: How many rejected lines ``submit --file`` prints before summing up the rest.
_SHOWN_ERRORS = 5
_UNSET: Any = object()


class UsageError(Exception):
    """Bad command-line input found after parsing; reported like an argparse error (exit 2)."""


# -- plumbing shared by every command group -----------------------------------------------------


class Context:
    """What a command handler gets besides its arguments."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json = bool(getattr(args, "json", False))
        # Made per call, not at import, so redirected streams (pytest's capsys, pipes) are honoured.
        self.out = _console(sys.stdout)
        self.err = _console(sys.stderr)

    @cached_property
    def client(self) -> Client:
        return Client(url=getattr(self.args, "url", None), api_key=getattr(self.args, "api_key", None))

    def print_json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")

    def show(self, data: Any, render: Callable[[Any], RenderableType]) -> None:
        """Print ``data`` as JSON under ``--json``, else what ``render(data)`` makes of it."""
        if self.json:
            self.print_json(data)
        else:
            self.out.print(render(data))


def _console(stream: Any) -> Console:
    console = Console(file=stream, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped output is read by grep and logs, not squeezed into 80 columns with ellipses.
        console.width = 160
    return console


def _common_options(defaults: bool) -> argparse.ArgumentParser:
    """``--url``, ``--api-key``, ``--json``; accepted before and after the command name.

    The copies on subcommands default to SUPPRESS, otherwise their defaults would overwrite a value
    given before the command name.
    """
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection and output")

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    group.add_argument(
        "--url",
        default=default(None),
        help=f"API base URL (env {URL_ENV}; default {DEFAULT_URL})",
    )
    group.add_argument("--api-key", default=default(None), metavar="KEY", help=f"API key (env {API_KEY_ENV})")
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the raw JSON answer instead of tables",
    )
    return parser


def _epilog(examples: str) -> str:
    return "Examples:\n" + textwrap.indent(textwrap.dedent(examples).strip("\n"), "  ")


def add_command(
    subparsers: Any,
    name: str,
    *,
    help: str,
    description: str,
    examples: str,
    handler: Handler,
    common: bool = True,
) -> argparse.ArgumentParser:
    """Add one command with a description, an ``Examples:`` epilog and the global options.

    Parameters
    ----------
    subparsers
        What ``ArgumentParser.add_subparsers()`` answered (for the top level or a group).
    name, help, description, examples : str
        ``help`` is the one-liner in the parent's list; ``examples`` is one command per line.
    handler : callable
        ``handler(args, ctx) -> exit code``.
    common : bool
        Add ``--url``, ``--api-key`` and ``--json``.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=_epilog(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(defaults=False)] if common else [],
    )
    parser.set_defaults(handler=handler, command_parser=parser)
    return parser


def add_group(subparsers: Any, name: str, *, help: str, description: str, examples: str) -> Any:
    """Add a command group (``taskplane NAME SUBCOMMAND``); answers the group's own subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=_epilog(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def show_help(args: argparse.Namespace, ctx: Context) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(handler=show_help, command_parser=parser)
    return parser.add_subparsers(title="commands", metavar="COMMAND")


def build_parser(groups: Iterable[Callable[[Any], None]] | None = None) -> argparse.ArgumentParser:
    """The whole ``taskplane`` parser: dev, the task commands and every group in ``GROUP_MODULES``."""
    parser = argparse.ArgumentParser(
        prog="taskplane",
        description="taskplane: run tasks now, later or on a cron, and DAG workflows, on AWS or locally.",
        epilog=_epilog(
            """
            taskplane dev                                  # local runtime on http://127.0.0.1:8080
            taskplane submit --target builtin:echo --payload '{"hi": 1}' --wait
            taskplane list --state FAILED
            taskplane get 01JD7Z5M6R8W3Q4T2Y1X0V9B8N --json
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"taskplane {__version__}")
    parser.set_defaults(handler=None, command_parser=parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in groups if groups is not None else _default_groups():
        register(subparsers)
    return parser


def _default_groups() -> list[Callable[[Any], None]]:
    groups: list[Callable[[Any], None]] = [register_dev, register_tasks]
    for name in GROUP_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but one of its imports is missing: a real bug
                raise
            continue
        groups.append(module.register)
    return groups


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``taskplane``; answers the exit code."""
    parser = build_parser()
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(argv)
        if args.handler is None:
            parser.print_help(sys.stderr)
            return 2
        try:
            return int(args.handler(args, Context(args)))
        except UsageError as exc:
            args.command_parser.error(str(exc))  # prints usage and raises SystemExit(2)
            raise  # pragma: no cover - error() never returns
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except TaskplaneError as exc:
        print_api_error(exc)
        return 1
    except KeyboardInterrupt:
        return 130


def print_api_error(exc: TaskplaneError) -> None:
    """``error: <code>: <message>`` and one line per detail, on stderr."""
    lines = [f"error: {exc.code}: {exc.message}"]
    lines += [f"  - {_format_detail(d)}" for d in exc.details]
    print("\n".join(lines), file=sys.stderr)


def _format_detail(detail: Any) -> str:
    if isinstance(detail, dict):
        field = detail.get("field") or detail.get("loc") or detail.get("path")
        message = detail.get("message") or detail.get("msg")
        if isinstance(field, list):
            field = ".".join(str(p) for p in field)
        if message:
            return f"{field}: {message}" if field else str(message)
        return json.dumps(detail, ensure_ascii=False, default=str)
    return str(detail)


def _format_error(error: Any) -> str:
    """One line for an ``{"code", "message", "details"}`` error object from a batch result."""
    if not isinstance(error, dict):
        return str(error)
    text = f"{error.get('code', 'error')}: {error.get('message', '')}".rstrip(": ")
    details = [_format_detail(d) for d in error.get("details") or []]
    return text + (f" ({'; '.join(details)})" if details else "")


# -- argument types ------------------------------------------------------------------------------


def parse_target(text: str) -> dict[str, Any]:
    """``builtin:echo`` -> ``{"type": "builtin", "name": "echo"}`` and the other shorthands.

    Only the first ``:`` separates, so ``lambda:arn:aws:lambda:...`` and ``http:https://...`` work.
    """
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if not sep or not rest:
        raise argparse.ArgumentTypeError(f"expected {TARGET_FORMS}; got {text!r}")
    if kind == "builtin":
        return {"type": "builtin", "name": rest}
    if kind == "lambda":
        return {"type": "lambda", "function": rest}
    if kind == "http":
        return {"type": "http", "url": rest, "method": "POST"}
    if kind == "sqs":
        return {"type": "sqs", "queue_url": rest}
    if kind == "eventbridge":
        return {"type": "eventbridge", "bus": rest}
    raise argparse.ArgumentTypeError(f"unknown target type {kind!r}: expected {TARGET_FORMS}")


def json_value(text: str) -> Any:
    """A JSON value given inline or as ``@path/to/file.json``."""
    source = "JSON"
    if text.startswith("@"):
        path = text[1:]
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {path!r}: {exc.strerror or exc}") from None
        source = f"JSON in {path}"
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid {source}: {exc}") from None


def json_object(text: str) -> dict[str, Any]:
    """Like :func:`json_value`, but it must be an object."""
    value = json_value(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}: {text[:60]!r}")
    return value


def _key_value(what: str) -> Callable[[str], tuple[str, str]]:
    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return key.strip(), value

    return parse


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    return port


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# -- taskplane dev -------------------------------------------------------------------------------


def register_dev(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "dev",
        help="run the local runtime (no AWS account needed)",
        description=(
            "Run the whole platform in one process: the HTTP API, the tick, the workers and Step Functions,\n"
            "on moto instead of AWS. Prints the URL and the API key; Ctrl-C stops it."
        ),
        examples="""
            taskplane dev
            taskplane dev --port 9000 --api-key dev-key
            taskplane dev --tenant acme=acme-key --tenant globex=globex-key
            taskplane dev --functions examples/functions.py
        """,
        handler=_cmd_dev,
        common=False,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    parser.add_argument("--port", type=_port, default=8080, help="port to listen on (default %(default)s)")
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
        type=_key_value("NAME=KEY"),
        metavar="NAME=KEY",
        help="add a tenant with its API key (repeatable)",
    )
    parser.add_argument(
        "--functions",
        metavar="FILE",
        help="Python file whose functions serve as local Lambda targets",
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
    missing = local_runtime_missing()
    if missing:
        print(
            f"error: taskplane dev needs the local runtime's packages ({missing} is not installed): "
            "pip install 'taskplane[local]'",
            file=sys.stderr,
        )
        return 1
    from taskplane.local.runtime import run_dev

    try:
        code = run_dev(
            host=args.host,
            port=args.port,
            api_key=api_key,
            tenants=tenants,
            functions_file=args.functions,
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


# -- task commands -------------------------------------------------------------------------------


def register_tasks(subparsers: Any) -> None:
    """``submit``, ``get``, ``list``, ``cancel``."""
    submit = add_command(
        subparsers,
        "submit",
        help="submit a task (or many from a JSON Lines file)",
        description=(
            "Submit a task. Build its body from the options, or send a whole body with --body;\n"
            "options given together with --body (or --file) override its fields.\n"
            f"Targets: {TARGET_FORMS}, or any target as --target-json.\n"
            "JSON options take inline JSON or @file.json."
        ),
        examples="""
            taskplane submit --target builtin:echo --payload '{"hello": "world"}'
            taskplane submit --target builtin:sleep --payload '{"ms": 500}' --wait
            taskplane submit --target lambda:resize-image --payload @job.json --priority high --label team=media
            taskplane submit --target http:https://example.com/hook --delay-ms 60000 --max-attempts 5
            taskplane submit --target-json '{"type": "eventbridge", "bus": "orders", "source": "shop"}'
            taskplane submit --body @task.json --idempotency-key order-42
            taskplane submit --file tasks.jsonl --priority low
        """,
        handler=_cmd_submit,
    )
    what = submit.add_argument_group("task body")
    target = what.add_mutually_exclusive_group()
    target.add_argument("--target", type=parse_target, metavar="TYPE:VALUE", help=f"target: {TARGET_FORMS}")
    target.add_argument("--target-json", type=json_object, metavar="JSON", help="target as a JSON object")
    what.add_argument(
        "--payload", type=json_value, default=_UNSET, metavar="JSON", help="payload (JSON or @file)"
    )
    when = what.add_mutually_exclusive_group()
    when.add_argument("--delay-ms", type=int, metavar="MS", help="run this many milliseconds from now")
    when.add_argument("--run-at", metavar="TIME", help="run at an RFC 3339 time, e.g. 2030-01-01T09:00:00Z")
    what.add_argument("--timeout-s", type=int, metavar="S", help="seconds one attempt may take (default 300)")
    what.add_argument("--max-attempts", type=int, metavar="N", help="attempts before the task fails")
    what.add_argument("--priority", choices=["high", "default", "low"], help="queue lane")
    what.add_argument(
        "--label",
        action="append",
        default=[],
        type=_key_value("KEY=VALUE"),
        metavar="KEY=VALUE",
        help="label (repeatable)",
    )
    what.add_argument("--idempotency-key", metavar="KEY", help="same key and body answer the same task")
    whole = what.add_mutually_exclusive_group()
    whole.add_argument("--body", type=json_object, metavar="JSON", help="a whole task body (JSON or @file)")
    whole.add_argument(
        "--file",
        metavar="FILE",
        help="JSON Lines file, one task body per line ('-' reads stdin); sent in batches",
    )
    submit.add_argument(
        "--chunk", type=_positive_int, default=100, metavar="N", help="tasks per batch call with --file"
    )
    submit.add_argument("--wait", action="store_true", help="wait for the task to finish and show it")
    submit.add_argument(
        "--wait-timeout", type=float, default=60.0, metavar="S", help="give up waiting after S seconds (60)"
    )

    get = add_command(
        subparsers,
        "get",
        help="show one task with its history",
        description="Show a task: state, times, attempts, result or error, and every state change.",
        examples="""
            taskplane get 01JD7Z5M6R8W3Q4T2Y1X0V9B8N
            taskplane get 01JD7Z5M6R8W3Q4T2Y1X0V9B8N --json | jq .result
        """,
        handler=_cmd_get,
    )
    get.add_argument("task_id", metavar="TASK_ID")

    listing = add_command(
        subparsers,
        "list",
        help="list tasks, newest first",
        description="List this tenant's tasks, newest first, one page at a time or all of them.",
        examples="""
            taskplane list
            taskplane list --state FAILED --limit 20
            taskplane list --all --json > tasks.json
        """,
        handler=_cmd_list,
    )
    listing.add_argument("--state", type=str.upper, choices=STATES, metavar="STATE", help=", ".join(STATES))
    listing.add_argument("--limit", type=_positive_int, metavar="N", help="tasks per page")
    listing.add_argument("--cursor", help="continue from a previous page's next_cursor")
    listing.add_argument("--all", action="store_true", help="follow next_cursor through every page")

    cancel = add_command(
        subparsers,
        "cancel",
        help="cancel a task that has not started",
        description="Cancel a task that is scheduled, pending or waiting to retry (running or finished: 409).",
        examples="""
            taskplane cancel 01JD7Z5M6R8W3Q4T2Y1X0V9B8N
        """,
        handler=_cmd_cancel,
    )
    cancel.add_argument("task_id", metavar="TASK_ID")


def task_body_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The task body the ``submit`` options describe, on top of ``base`` (or ``--body``)."""
    body: dict[str, Any] = dict(base if base is not None else (args.body or {}))
    if args.target is not None:
        body["target"] = args.target
    if args.target_json is not None:
        body["target"] = args.target_json
    if args.payload is not _UNSET:
        body["payload"] = args.payload
    # run_at and delay_ms exclude each other: an option replaces whichever the base had.
    if args.delay_ms is not None:
        body.pop("run_at", None)
        body["delay_ms"] = args.delay_ms
    if args.run_at is not None:
        body.pop("delay_ms", None)
        body["run_at"] = args.run_at
    if args.timeout_s is not None:
        body["timeout_s"] = args.timeout_s
    if args.max_attempts is not None:
        body["retry"] = {**(body.get("retry") or {}), "max_attempts": args.max_attempts}
    if args.priority is not None:
        body["priority"] = args.priority
    if args.label:
        body["labels"] = {**(body.get("labels") or {}), **dict(args.label)}
    return body


def _cmd_submit(args: argparse.Namespace, ctx: Context) -> int:
    if args.file is not None:
        return _submit_file(args, ctx)
    body = task_body_from_args(args)
    if "target" not in body:
        raise UsageError("a target is required: --target, --target-json, or a --body with a target")
    task = ctx.client.submit(body, idempotency_key=args.idempotency_key)
    if not args.wait:
        ctx.show(task, _render_submitted)
        return 0
    if not ctx.json:
        ctx.err.print(Text(f"submitted {task.get('task_id')}, waiting for it to finish..."))
    try:
        final = ctx.client.wait(str(task["task_id"]), timeout_s=args.wait_timeout)
    except WaitTimeoutError as exc:
        if ctx.json:
            ctx.print_json(exc.task)
        print(f"error: timeout: {exc}", file=sys.stderr)
        return 1
    ctx.show(final, render_task)
    return 0 if final.get("state") == "SUCCEEDED" else 1


def _read_jsonl(path: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, body) for every non-blank line; any bad line stops everything before sending."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"argument --file: cannot read {path!r}: {exc.strerror or exc}") from None
    bodies = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"argument --file: {path} line {number}: invalid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise UsageError(
                f"argument --file: {path} line {number}: expected a task body (JSON object), "
                f"got {type(value).__name__}"
            )
        bodies.append((number, value))
    return bodies


def _submit_file(args: argparse.Namespace, ctx: Context) -> int:
    if args.wait:
        raise UsageError("--wait works with one task, not with --file")
    if args.idempotency_key:
        raise UsageError(
            "--idempotency-key names one task; put an idempotency_key field on each line instead"
        )
    lines = _read_jsonl(args.file)
    numbers = [number for number, _ in lines]
    bodies = [task_body_from_args(args, base=body) for _, body in lines]

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("submitting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ctx.err,
    ) as progress:
        bar = progress.add_task("submit", total=len(bodies))
        results = ctx.client.submit_many(
            bodies,
            chunk=args.chunk,
            on_progress=lambda done, total: progress.update(bar, completed=done),
        )
    for result in results:
        result["line"] = numbers[result["index"]]
    rejected = [r for r in results if "error" in r]
    summary = {"accepted": len(results) - len(rejected), "rejected": len(rejected), "results": results}
    if ctx.json:
        ctx.print_json(summary)
    else:
        ctx.out.print(
            Text.assemble(
                ("accepted ", ""),
                (str(summary["accepted"]), "green"),
                (", rejected ", ""),
                (str(summary["rejected"]), "red" if rejected else ""),
                f" (of {len(results)} from {args.file})",
            )
        )
        for result in rejected[:_SHOWN_ERRORS]:
            ctx.out.print(Text(f"  line {result['line']}: {_format_error(result['error'])}"))
        if len(rejected) > _SHOWN_ERRORS:
            ctx.out.print(Text(f"  ... and {len(rejected) - _SHOWN_ERRORS} more (--json shows all)"))
    return 1 if rejected else 0


def _cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    ctx.show(ctx.client.get(args.task_id), render_task)
    return 0


def _cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    if args.all:
        items = list(ctx.client.iter_tasks(state=args.state, page_size=args.limit or 100))
        page: dict[str, Any] = {"items": items, "next_cursor": None}
    else:
        page = ctx.client.list(state=args.state, limit=args.limit, cursor=args.cursor)
    ctx.show(page, render_task_list)
    return 0


def _cmd_cancel(args: argparse.Namespace, ctx: Context) -> int:
    task = ctx.client.cancel(args.task_id)
    ctx.show(task, lambda t: Text.assemble("cancelled ", (str(t.get("task_id")), "bold"), "  ", _state(t)))
    return 0


# -- renderings ----------------------------------------------------------------------------------


def _state(task: dict[str, Any]) -> Text:
    state = str(task.get("state") or "?")
    return Text(state, style=_STATE_STYLES.get(state, ""))


def target_label(target: Any) -> str:
    """``builtin:echo``, ``lambda:resize``, ``http:POST https://...``: a target in one short string."""
    if not isinstance(target, dict):
        return "" if target is None else str(target)
    kind = str(target.get("type", "?"))
    if kind == "http":
        return f"http:{target.get('method', 'POST')} {target.get('url', '')}"
    for field in ("name", "function", "queue_url", "bus"):
        if target.get(field):
            return f"{kind}:{target[field]}"
    return kind


def _render_submitted(task: dict[str, Any]) -> RenderableType:
    text = Text.assemble("submitted ", (str(task.get("task_id")), "bold"), "  ", _state(task))
    if task.get("run_at"):
        text.append(f"  run_at {task['run_at']}")
    return text


def render_task(task: dict[str, Any]) -> RenderableType:
    """A panel with a task's fields, result or error, and its history."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("state", _state(task))
    grid.add_row("target", Text(target_label(task.get("target"))))
    for field in ("priority", "attempts"):
        if task.get(field) is not None:
            grid.add_row(field, Text(str(task[field])))
    if task.get("labels"):
        grid.add_row("labels", Text(", ".join(f"{k}={v}" for k, v in task["labels"].items())))
    for field in (
        "run_at",
        "created_at",
        "dispatched_at",
        "started_at",
        "finished_at",
        "next_attempt_at",
        "deadline",
    ):
        if task.get(field):
            grid.add_row(field, Text(str(task[field])))
    if task.get("result") is not None:
        grid.add_row("result", Text(_short_json(task["result"])))
    error = task.get("error")
    if error:
        message = (
            f"{error.get('type', 'error')}: {error.get('message', '')}" if isinstance(error, dict) else error
        )
        grid.add_row("error", Text(str(message), style="red"))
    parts: list[RenderableType] = [grid]
    history = task.get("history") or []
    if history:
        table = Table(title="history", title_justify="left", expand=False)
        table.add_column("at", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("detail")
        for entry in history:
            table.add_row(Text(str(entry.get("at", ""))), _state(entry), Text(str(entry.get("detail") or "")))
        parts.append(table)
    state = str(task.get("state"))
    return Panel(
        Group(*parts),
        title=Text(f"task {task.get('task_id')}"),
        title_align="left",
        border_style=_STATE_STYLES.get(state, ""),
        expand=False,
    )


def render_task_list(page: dict[str, Any]) -> RenderableType:
    """A table of tasks, with a hint for the next page."""
    items = page.get("items") or []
    if not items:
        return Text("no tasks", style="dim")
    cursor = page.get("next_cursor")
    if not cursor:
        return _TaskTable(items)
    hint = Text(f"more tasks: taskplane list --cursor {cursor}  (or --all)", style="dim")
    return Group(_TaskTable(items), hint)


class _TaskTable:
    """The task list, laid out for the width it is given.

    Ids and timestamps are never cut (people copy them); the target takes what is left, and on a
    narrow terminal the created_at column is dropped rather than folded.
    """

    _GAP = 3  # between columns of a SIMPLE_HEAD table without edge padding
    _MIN_TARGET = 12

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        def width(field: str, header: str) -> int:
            return max([len(header), *(len(str(t.get(field) or "")) for t in self.items)])

        fixed = width("task_id", "task_id") + width("state", "state") + width("attempts", "attempts")
        created = width("created_at", "created_at")
        with_created = options.max_width - fixed - created - 4 * self._GAP >= self._MIN_TARGET
        room = options.max_width - fixed - (created + 4 * self._GAP if with_created else 3 * self._GAP)
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("task_id", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column(
            "target", no_wrap=True, overflow="ellipsis", max_width=max(self._MIN_TARGET, min(60, room))
        )
        table.add_column("attempts", justify="right", no_wrap=True)
        if with_created:
            table.add_column("created_at", no_wrap=True)
        for task in self.items:
            row = [
                Text(str(task.get("task_id", ""))),
                _state(task),
                Text(target_label(task.get("target"))),
                Text(str(task.get("attempts", ""))),
            ]
            if with_created:
                row.append(Text(str(task.get("created_at") or "")))
            table.add_row(*row)
        yield table


def _short_json(value: Any, limit: int = 2000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters, --json)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
