"""``taskplane trigger ...``: create, list, get and delete event triggers, windowed or not.

A window mode is given as ``--batch``, ``--debounce`` or ``--correlate``: JSON (or ``@file.json``), or
for batch and debounce the short form ``key=$.detail.user,window_ms=5000,max_events=100``. The task
template takes the same options as ``taskplane submit``, without a start time or a payload (the event,
or the window's events, is the payload).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import RenderableType
from rich.text import Text

from taskplane.cli.base import (
    TARGET_FORMS,
    Context,
    UsageError,
    add_command,
    add_group,
    json_object,
)
from taskplane.cli.render import fields_panel, json_excerpt, simple_table, target_label
from taskplane.cli.tasks import add_task_options, task_body_from_args
from taskplane.client import TaskplaneError, quote_segment

MODES = ("batch", "debounce", "correlate")
_INTEGERS = ("max_events", "window_ms", "max_bytes", "max_wait_ms", "within_ms")


def window_option(text: str) -> dict[str, Any]:
    """A window mode's settings: JSON, @file, or ``name=value`` pairs separated by commas."""
    if text.lstrip().startswith(("{", "@")):
        return json_object(text)
    settings: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"expected name=value, got {part!r}")
        if name in _INTEGERS:
            try:
                settings[name] = int(value)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {value!r}") from None
        else:
            settings[name] = value
    return settings


def register(subparsers: Any) -> None:
    """Add ``taskplane trigger`` and its commands."""
    group = add_group(
        subparsers,
        "trigger",
        help="start tasks from events (one per event, or per window of events)",
        description=(
            "Event triggers: an EventBridge pattern starts a task for every matching event, or, with a\n"
            "window mode, one task per window of events sharing a key (batch, debounce, correlate)."
        ),
        examples="""
            taskplane trigger create --pattern '{"source": ["shop.orders"]}' --target builtin:echo
            taskplane trigger create --pattern '{"source": ["shop.web"]}' --target builtin:echo \\
                --batch 'key=$.detail.user,window_ms=5000,max_events=100'
            taskplane trigger list
        """,
    )
    create = add_command(
        group,
        "create",
        help="create a trigger",
        description=(
            "Create a trigger. --pattern is an EventBridge event pattern (a correlating trigger lists\n"
            "its patterns in --correlate instead). At most one window mode.\n"
            f"Targets: {TARGET_FORMS}, or any target as --target-json."
        ),
        examples="""
            taskplane trigger create --pattern '{"source": ["shop.orders"]}' --target lambda:orders
            taskplane trigger create --pattern '{"source": ["shop.web"]}' --target builtin:echo \\
                --debounce 'key=$.detail.user,window_ms=500'
            taskplane trigger create --target builtin:echo --correlate @attribution.json
        """,
        handler=_cmd_create,
    )
    trigger = create.add_argument_group("trigger")
    trigger.add_argument("--pattern", type=json_object, metavar="JSON", help="an EventBridge event pattern")
    trigger.add_argument("--bus", metavar="BUS", help="taskplane (default) or an allowed external bus")
    trigger.add_argument("--name", metavar="NAME", help="a name to recognise the trigger by")
    for mode in MODES:
        trigger.add_argument(
            f"--{mode}",
            type=window_option,
            metavar="SETTINGS",
            help=f"{mode} window: JSON, @file, or name=value,... (see the README)",
        )
    what = create.add_argument_group("task template (as for `taskplane submit`)")
    add_task_options(what, start=False)
    # what task_body_from_args reads that a trigger's template never has
    create.set_defaults(body=None, delay_ms=None, run_at=None)
    for name, help_, handler in (
        ("get", "show one trigger", _cmd_get),
        ("delete", "delete a trigger and its rules", _cmd_delete),
    ):
        command = add_command(
            group,
            name,
            help=help_,
            description=help_.capitalize() + ".",
            examples=f"taskplane trigger {name} 01JD7Z5M6R8W3Q4T2Y1X0V9B8N",
            handler=handler,
        )
        command.add_argument("trigger_id", metavar="TRIGGER_ID")
    add_command(
        group,
        "list",
        help="list triggers",
        description="List this tenant's triggers, newest first.",
        examples="taskplane trigger list --json",
        handler=_cmd_list,
    )


def trigger_body_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /v1/triggers`` body the ``trigger create`` options describe."""
    task = task_body_from_args(args)
    if "target" not in task:
        raise UsageError("a target is required: --target or --target-json")
    if "payload" in task or "payload_ref" in task:
        raise UsageError("a trigger's task has no payload: the event (or the window's events) is its payload")
    body: dict[str, Any] = {"task": task}
    if args.pattern is not None:
        body["event_pattern"] = args.pattern
    for name in ("bus", "name", *MODES):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    if args.pattern is None and args.correlate is None:
        raise UsageError("--pattern is required (or --correlate with its patterns)")
    return body


def _call(ctx: Context, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    status, body = ctx.client.request(method, path, **kwargs)
    if not isinstance(body, dict):
        raise TaskplaneError(status, "bad_response", f"{method} {path} answered {type(body).__name__}")
    return body


def _mode(trigger: dict[str, Any]) -> str:
    for mode in MODES:
        if mode in trigger:
            settings = {k: v for k, v in trigger[mode].items() if k not in ("events", "on_timeout")}
            return f"{mode} {json.dumps(settings, separators=(',', ':'))}"
    return "each event"


def render_trigger(trigger: dict[str, Any], verb: str = "") -> RenderableType:
    patterns = trigger.get("rule_patterns") or [trigger.get("event_pattern")]
    rows: list[tuple[str, RenderableType]] = [
        ("name", trigger.get("name") or ""),
        ("bus", str(trigger.get("bus"))),
        ("starts", _mode(trigger)),
        ("target", target_label(trigger.get("task", {}).get("target"))),
        *((f"pattern {i}", json_excerpt(p, 200)) for i, p in enumerate(patterns)),
        ("created", str(trigger.get("created_at"))),
    ]
    title = f"{verb + ' ' if verb else ''}trigger {trigger.get('trigger_id')}"
    return fields_panel(title, rows)


def _cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    trigger = _call(ctx, "POST", "/v1/triggers", body=trigger_body_from_args(args))
    ctx.show(trigger, lambda t: render_trigger(t, verb="created"))
    return 0


def _cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    ctx.show(_call(ctx, "GET", f"/v1/triggers/{quote_segment(args.trigger_id)}"), render_trigger)
    return 0


def _cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    page = _call(ctx, "GET", "/v1/triggers")
    ctx.show(
        page,
        lambda p: simple_table(
            ["trigger", "name", "starts", "target"],
            [
                [
                    t["trigger_id"],
                    t.get("name") or "",
                    _mode(t),
                    target_label(t.get("task", {}).get("target")),
                ]
                for t in p.get("items", [])
            ],
        ),
    )
    return 0


def _cmd_delete(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.request("DELETE", f"/v1/triggers/{quote_segment(args.trigger_id)}")
    if ctx.json:
        ctx.print_json({"trigger_id": args.trigger_id, "deleted": True})
    else:
        ctx.out.print(Text.assemble("deleted ", (args.trigger_id, "bold")))
    return 0
