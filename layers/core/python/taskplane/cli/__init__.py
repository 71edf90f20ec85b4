"""The ``taskplane`` command: the local runtime (``taskplane dev``) and a CLI over the HTTP API.

The package
-----------
``base`` holds what every command builds on (:class:`~taskplane.cli.base.Context`, ``add_command``,
``add_group``, argument types), ``render`` every rendering (states, panels, tables, JSON excerpts),
and one module per command group: ``dev``, ``tasks`` (``submit``, ``get``, ``list``, ``cancel``),
``schedules`` and ``workflows`` (with Python flows).

Adding a command group
----------------------
A group is a module with ``register(subparsers)`` that adds its commands with
:func:`~taskplane.cli.base.add_command` (and :func:`~taskplane.cli.base.add_group` for nested ones
such as ``taskplane workflow put``). A command's handler is ``handler(args, ctx) -> int``: ``ctx`` is a
:class:`~taskplane.cli.base.Context` with the API client, the consoles and ``ctx.show`` (raw JSON
under ``--json``, a rendering from :mod:`taskplane.cli.render` otherwise). Raise
:class:`~taskplane.cli.base.UsageError` for bad input (exit 2); :class:`~taskplane.client.TaskplaneError`
is printed and exits 1. Every command has a description and examples (a test asks each ``--help``).
List the module in ``GROUP_MODULES``; a listed module that does not exist yet is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

from taskplane import __version__
from taskplane.cli import dev, tasks
from taskplane.cli.base import (
    CommandFailed,
    Context,
    UsageError,
    add_command,
    add_group,
    common_options,
    epilog,
    json_object,
    json_value,
    parse_target,
)
from taskplane.cli.render import format_detail, render_task, render_task_list, target_label
from taskplane.cli.tasks import task_body_from_args
from taskplane.client import TaskplaneError

#: Modules holding more command groups, each with ``register(subparsers)``.
GROUP_MODULES: tuple[str, ...] = (
    "taskplane.cli.schedules",
    "taskplane.cli.triggers",
    "taskplane.cli.workflows",
)


def build_parser(groups: Iterable[Callable[[Any], None]] | None = None) -> argparse.ArgumentParser:
    """The whole ``taskplane`` parser: dev, the task commands and every group in ``GROUP_MODULES``."""
    parser = argparse.ArgumentParser(
        prog="taskplane",
        description="taskplane: run tasks now, later or on a cron, and DAG workflows, on AWS or locally.",
        epilog=epilog(
            """
            taskplane dev                                  # local runtime on http://127.0.0.1:8080
            taskplane submit --target builtin:echo --payload '{"hi": 1}' --wait
            taskplane list --state FAILED
            taskplane get 01JD7Z5M6R8W3Q4T2Y1X0V9B8N --json
            taskplane workflow put examples/order_flow.py  # every @flow in a Python file
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"taskplane {__version__}")
    parser.set_defaults(handler=None, command_parser=parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in groups if groups is not None else _default_groups():
        register(subparsers)
    return parser


def _default_groups() -> list[Callable[[Any], None]]:
    groups: list[Callable[[Any], None]] = [dev.register, tasks.register]
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
    except CommandFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def print_api_error(exc: TaskplaneError) -> None:
    """``error: <code>: <message>`` and one line per detail, on stderr."""
    lines = [f"error: {exc.code}: {exc.message}"]
    lines += [f"  - {format_detail(d)}" for d in exc.details]
    print("\n".join(lines), file=sys.stderr)


__all__ = [
    "GROUP_MODULES",
    "CommandFailed",
    "Context",
    "UsageError",
    "add_command",
    "add_group",
    "build_parser",
    "json_object",
    "json_value",
    "main",
    "parse_target",
    "print_api_error",
    "render_task",
    "render_task_list",
    "target_label",
    "task_body_from_args",
]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
