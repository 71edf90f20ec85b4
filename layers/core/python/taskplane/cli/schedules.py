"""``taskplane schedule ...``: create, list, get, pause, resume and delete cron schedules.

The task template of ``schedule create`` takes the same options as ``taskplane submit`` and is built
by the same :func:`~taskplane.cli.tasks.task_body_from_args`; the options that give a task its own start
time or identity (``--delay-ms``, ``--run-at``, ``--idempotency-key``) or that only make sense for one
submission (``--file``, ``--wait``) are refused with a message saying why.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.text import Text

from taskplane.cli.base import (
    TARGET_FORMS,
    Context,
    UsageError,
    add_command,
    add_group,
    int_between,
    json_object,
    timestamp,
)
from taskplane.cli.render import render_schedule, render_schedule_change, render_schedule_list
from taskplane.cli.tasks import add_task_options, task_body_from_args
from taskplane.client import TaskplaneError, quote_segment
from taskplane.domain.cron import CronError, parse_cron

#: ``ScheduleCreate.misfire`` and ``.overlap`` (the API's contract, ARCHITECTURE §3).
MISFIRE = ("fire_once", "fire_all", "skip")
OVERLAP = ("allow", "skip")
#: Largest page ``GET /v1/schedules`` answers.
MAX_PAGE = 500
#: Page size of ``schedule list --all`` when no ``--limit`` is given.
ALL_PAGE = 100
#: Task body fields a schedule's template cannot have: the schedule decides when and as what it runs.
_NOT_IN_TEMPLATE = ("run_at", "delay_ms", "idempotency_key")


def register(subparsers: Any) -> None:
    """Add ``taskplane schedule`` and its commands."""
    group = add_group(
        subparsers,
        "schedule",
        help="run a task on a cron schedule",
        description=(
            "Cron schedules: each fire starts one task from the schedule's task template.\n"
            "Times are wall-clock times in the schedule's IANA time zone (default UTC)."
        ),
        examples="""
            taskplane schedule create --cron '0 9 * * 1-5' --timezone Europe/Paris --target builtin:echo
            taskplane schedule list
            taskplane schedule pause 01JD7Z5M6R8W3Q4T2Y1X0V9B8N
        """,
    )
    _register_create(group)

    listing = add_command(
        group,
        "list",
        help="list schedules, newest first",
        description="List this tenant's schedules with their state and next fire, a page at a time or all.",
        examples="""
            taskplane schedule list
            taskplane schedule list --limit 20
            taskplane schedule list --all --json > schedules.json
        """,
        handler=_cmd_list,
    )
    listing.add_argument(
        "--limit", type=int_between(1, MAX_PAGE), metavar="N", help=f"schedules per page (1-{MAX_PAGE})"
    )
    listing.add_argument("--cursor", help="continue from a previous page's next_cursor")
    listing.add_argument("--all", action="store_true", help="follow next_cursor through every page")

    for name, help_, description, handler in (
        (
            "get",
            "show one schedule",
            "Show a schedule: cron, zone, state, next and last fire, counters and its task template.",
            _cmd_get,
        ),
        (
            "pause",
            "stop a schedule from firing",
            "Pause a schedule: it fires no task until resumed. Pausing a paused schedule changes nothing.",
            _cmd_pause,
        ),
        (
            "resume",
            "let a paused schedule fire again, from now",
            "Resume a paused schedule from now: fires missed while it was paused are skipped, not caught up.",
            _cmd_resume,
        ),
        (
            "delete",
            "delete a schedule",
            "Delete a schedule for good. Tasks it already started are not touched.",
            _cmd_delete,
        ),
    ):
        command = add_command(
            group,
            name,
            help=help_,
            description=description,
            examples=f"""
                taskplane schedule {name} 01JD7Z5M6R8W3Q4T2Y1X0V9B8N
                taskplane schedule {name} 01JD7Z5M6R8W3Q4T2Y1X0V9B8N --json
            """,
            handler=handler,
        )
        command.add_argument("schedule_id", metavar="SCHEDULE_ID")


def _register_create(group: Any) -> None:
    create = add_command(
        group,
        "create",
        help="create a schedule",
        description=(
            "Create a cron schedule. Its task template takes the same options as `taskplane submit`\n"
            "(or a whole task body with --body, which the options override), without a start time:\n"
            "the cron decides when each task runs.\n"
            f"Targets: {TARGET_FORMS}, or any target as --target-json.\n"
            "JSON options take inline JSON or @file.json. Prints the schedule with its next fire."
        ),
        examples="""
            taskplane schedule create --cron '*/5 * * * *' --target builtin:echo --payload '{"ping": 1}'
            taskplane schedule create --cron '0 9 * * 1-5' --timezone Europe/Paris --name weekday-report \\
                --target lambda:build-report --priority high --label team=finance
            taskplane schedule create --cron '0 * * * *' --misfire skip --overlap skip --body @task.json
            taskplane schedule create --cron '30 2 * * *' --start-at 2030-01-01T00:00:00Z --end-at 2030-02-01T00:00:00Z \\
                --target http:https://example.com/nightly --max-attempts 5
        """,
        handler=_cmd_create,
    )
    when = create.add_argument_group("schedule")
    when.add_argument(
        "--cron",
        required=True,
        type=_cron,
        metavar="EXPR",
        help="5 fields: minute hour day-of-month month day-of-week (quote it)",
    )
    when.add_argument(
        "--timezone", metavar="ZONE", help="IANA time zone of the cron, e.g. Europe/Paris (UTC)"
    )
    when.add_argument("--name", metavar="NAME", help="a name to recognise the schedule by")
    when.add_argument(
        "--misfire",
        choices=MISFIRE,
        help="fires missed while the platform was down: one task (fire_once, default), one per fire, or none",
    )
    when.add_argument(
        "--overlap",
        choices=OVERLAP,
        help="when the previous fire's task is still running: start anyway (allow, default) or skip",
    )
    when.add_argument("--start-at", type=timestamp, metavar="TIME", help="no fire before this RFC 3339 time")
    when.add_argument("--end-at", type=timestamp, metavar="TIME", help="no fire after this RFC 3339 time")

    what = create.add_argument_group("task template (as for `taskplane submit`)")
    add_task_options(what, start=False)
    what.add_argument(
        "--body",
        type=json_object,
        metavar="JSON",
        help="a whole task template (JSON or @file), not the schedule",
    )
    # `submit` options that have no meaning here: hidden, and refused with the reason when given.
    later = "the cron decides when each task runs (--start-at delays the first fire)"
    for option, reason in (
        ("--delay-ms", later),
        ("--run-at", later),
        (
            "--idempotency-key",
            "each fire's task id comes from the schedule and the fire time, so a fire never starts twice",
        ),
        ("--file", "a schedule has one task template: give it with the task options or --body"),
        ("--wait", "a schedule starts its tasks later; see them with `taskplane list`"),
    ):
        create.add_argument(option, action=_Refused, reason=f"not for schedules: {reason}")


class _Refused(argparse.Action):
    """A hidden option that is an error whenever it is given, with or without a value."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, reason: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", default=None, help=argparse.SUPPRESS)
        self.reason = reason

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None
    ) -> None:
        raise argparse.ArgumentError(self, self.reason)


# -- argument types ------------------------------------------------------------------------------


def _cron(text: str) -> str:
    """Checked here as the API checks it (Vixie's grammar, a date that matches), so nothing is sent."""
    try:
        return parse_cron(text)
    except CronError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- handlers ------------------------------------------------------------------------------------


def schedule_body_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /v1/schedules`` body the ``schedule create`` options describe.

    Raises
    ------
    UsageError
        No target, a template with a start time or identity of its own, or an empty window.
    """
    base = args.body or {}
    if "cron" in base or "task" in base:
        raise UsageError(
            "argument --body: expected a task template (target, payload, ...), not a whole schedule; "
            "give the schedule's fields as options"
        )
    for field in _NOT_IN_TEMPLATE:
        if field in base:
            raise UsageError(
                f"argument --body: a schedule's task cannot have {field}: the schedule decides when it runs"
            )
    task = task_body_from_args(args)
    if "target" not in task:
        raise UsageError("a target is required: --target, --target-json, or a --body with a target")
    if (
        args.start_at
        and args.end_at
        and datetime.fromisoformat(args.end_at) <= datetime.fromisoformat(args.start_at)
    ):
        raise UsageError(f"argument --end-at: {args.end_at} is not after --start-at {args.start_at}")
    body: dict[str, Any] = {"cron": args.cron, "task": task}
    for field in ("timezone", "name", "misfire", "overlap", "start_at", "end_at"):
        value = getattr(args, field)
        if value is not None:
            body[field] = value
    return body


def _call(ctx: Context, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """One API call whose answer must be a JSON object."""
    status, body = ctx.client.request(method, path, **kwargs)
    if not isinstance(body, dict):
        raise TaskplaneError(
            status, "bad_response", f"{method} {path} answered {type(body).__name__}, not a JSON object"
        )
    return body


def _path(schedule_id: str, action: str = "") -> str:
    return f"/v1/schedules/{quote_segment(schedule_id)}" + (f"/{action}" if action else "")


def _cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    schedule = _call(ctx, "POST", "/v1/schedules", body=schedule_body_from_args(args))
    ctx.show(schedule, lambda s: render_schedule(s, verb="created"))
    return 0


def _cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    if args.all:
        items: list[Any] = []
        cursor = args.cursor
        while True:
            page = _call(
                ctx, "GET", "/v1/schedules", query={"limit": args.limit or ALL_PAGE, "cursor": cursor}
            )
            items.extend(page.get("items") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        page = {"items": items, "next_cursor": None}
    else:
        page = _call(ctx, "GET", "/v1/schedules", query={"limit": args.limit, "cursor": args.cursor})
    ctx.show(page, render_schedule_list)
    return 0


def _cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    ctx.show(_call(ctx, "GET", _path(args.schedule_id)), render_schedule)
    return 0


def _cmd_pause(args: argparse.Namespace, ctx: Context) -> int:
    ctx.show(
        _call(ctx, "POST", _path(args.schedule_id, "pause")), lambda s: render_schedule_change("paused", s)
    )
    return 0


def _cmd_resume(args: argparse.Namespace, ctx: Context) -> int:
    ctx.show(
        _call(ctx, "POST", _path(args.schedule_id, "resume")), lambda s: render_schedule_change("resumed", s)
    )
    return 0


def _cmd_delete(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.request("DELETE", _path(args.schedule_id))  # 204, no body; errors raise
    if ctx.json:
        ctx.print_json({"schedule_id": args.schedule_id, "deleted": True})
    else:
        ctx.out.print(Text.assemble("deleted ", (args.schedule_id, "bold")))
    return 0
