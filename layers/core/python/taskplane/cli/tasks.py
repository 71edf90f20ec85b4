"""``taskplane submit | get | list | cancel``: tasks, one at a time or from a JSON Lines file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.text import Text

from taskplane.cli.base import (
    TARGET_FORMS,
    UNSET,
    Context,
    UsageError,
    add_command,
    json_object,
    json_value,
    key_value,
    parse_target,
    positive_int,
)
from taskplane.cli.render import (
    format_error,
    render_cancelled,
    render_submitted,
    render_task,
    render_task_list,
)
from taskplane.client import WaitTimeoutError
from taskplane.domain.states import TaskState

STATES: tuple[str, ...] = tuple(s.value for s in TaskState)
#: How many rejected lines ``submit --file`` prints before summing up the rest.
_SHOWN_ERRORS = 5


def add_task_options(group: Any, *, start: bool) -> None:
    """The task body options of ``submit`` (and, without the start time, of ``schedule create``)."""
    target = group.add_mutually_exclusive_group()
    target.add_argument("--target", type=parse_target, metavar="TYPE:VALUE", help=f"target: {TARGET_FORMS}")
    target.add_argument("--target-json", type=json_object, metavar="JSON", help="target as a JSON object")
    group.add_argument(
        "--payload", type=json_value, default=UNSET, metavar="JSON", help="payload (JSON or @file)"
    )
    if start:
        when = group.add_mutually_exclusive_group()
        when.add_argument("--delay-ms", type=int, metavar="MS", help="run this many milliseconds from now")
        when.add_argument(
            "--run-at", metavar="TIME", help="run at an RFC 3339 time, e.g. 2030-01-01T09:00:00Z"
        )
    group.add_argument(
        "--timeout-s", type=int, metavar="S", help="seconds one attempt may take (default 300)"
    )
    group.add_argument("--max-attempts", type=int, metavar="N", help="attempts before the task fails")
    group.add_argument("--priority", choices=["high", "default", "low"], help="queue lane")
    group.add_argument(
        "--label",
        action="append",
        default=[],
        type=key_value("KEY=VALUE"),
        metavar="KEY=VALUE",
        help="label (repeatable)",
    )


def register(subparsers: Any) -> None:
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
    add_task_options(what, start=True)
    what.add_argument("--idempotency-key", metavar="KEY", help="same key and body answer the same task")
    whole = what.add_mutually_exclusive_group()
    whole.add_argument("--body", type=json_object, metavar="JSON", help="a whole task body (JSON or @file)")
    whole.add_argument(
        "--file",
        metavar="FILE",
        help="JSON Lines file, one task body per line ('-' reads stdin); sent in batches",
    )
    submit.add_argument(
        "--chunk", type=positive_int, default=100, metavar="N", help="tasks per batch call with --file"
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
    listing.add_argument("--limit", type=positive_int, metavar="N", help="tasks per page")
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
    if args.payload is not UNSET:
        body["payload"] = args.payload
    # run_at and delay_ms exclude each other: an option replaces whichever the base had.
    if getattr(args, "delay_ms", None) is not None:
        body.pop("run_at", None)
        body["delay_ms"] = args.delay_ms
    if getattr(args, "run_at", None) is not None:
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
        ctx.show(task, render_submitted)
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

        def waiting(count: int, wait_s: float) -> None:
            # The API refused these for now (a full lane): say so, then the client sends them again.
            progress.console.print(
                Text(f"{count} task{'s' if count != 1 else ''} throttled; sending again in {wait_s:g}s")
            )

        results = ctx.client.submit_many(
            bodies,
            chunk=args.chunk,
            on_progress=lambda done, total: progress.update(bar, completed=done),
            on_retry=waiting,
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
            ctx.out.print(Text(f"  line {result['line']}: {format_error(result['error'])}"))
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
    ctx.show(ctx.client.cancel(args.task_id), render_cancelled)
    return 0
