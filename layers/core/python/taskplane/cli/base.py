"""What every command group builds on: the context a handler gets, the parser helpers, argument types."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType

from taskplane.client import API_KEY_ENV, DEFAULT_URL, URL_ENV, Client
from taskplane.domain.shorthand import TARGET_SHORTHANDS, target_from_shorthand

Handler = Callable[[argparse.Namespace, "Context"], int]

TARGET_FORMS = TARGET_SHORTHANDS
#: Marks an option that was not given (``--payload null`` is a value).
UNSET: Any = object()


class UsageError(Exception):
    """Bad command-line input found after parsing; reported like an argparse error (exit 2)."""


class CommandFailed(Exception):
    """The command could not do its work for a reason its message gives; ``error: <message>``, exit 1."""


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


def common_options(defaults: bool) -> argparse.ArgumentParser:
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


def epilog(examples: str) -> str:
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
        epilog=epilog(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_options(defaults=False)] if common else [],
    )
    parser.set_defaults(handler=handler, command_parser=parser)
    return parser


def add_group(subparsers: Any, name: str, *, help: str, description: str, examples: str) -> Any:
    """Add a command group (``taskplane NAME SUBCOMMAND``); answers the group's own subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def show_help(args: argparse.Namespace, ctx: Context) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(handler=show_help, command_parser=parser)
    return parser.add_subparsers(title="commands", metavar="COMMAND")


# -- argument types ------------------------------------------------------------------------------


def parse_target(text: str) -> dict[str, Any]:
    """``builtin:echo`` -> ``{"type": "builtin", "name": "echo"}`` and the other shorthands.

    Only the first ``:`` separates, so ``lambda:arn:aws:lambda:...`` and ``http:https://...`` work.
    """
    try:
        return target_from_shorthand(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def key_value(what: str) -> Callable[[str], tuple[str, str]]:
    """An argument type for ``KEY=VALUE`` (only the first ``=`` separates)."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return key.strip(), value

    return parse


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


def http_url(text: str) -> str:
    """An argument type for an http(s) URL with a host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text.strip())
        host = parts.hostname
    except ValueError:
        host = None
    if parts.scheme not in ("http", "https") or not host:
        raise argparse.ArgumentTypeError(
            f"expected an http(s) URL such as http://localhost:4318, got {text!r}"
        )
    return text.strip()


def int_between(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argument type for an integer from ``low`` (to ``high``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}-{high}, got {value}")
        return value

    return parse


positive_int = int_between(1)


def timestamp(text: str) -> str:
    """An RFC 3339 time with an offset (``Z`` or ``+02:00``), sent as it was given."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 time such as 2030-01-01T09:00:00Z, got {text!r}"
        ) from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset: add Z (UTC) or one like +02:00")
    return text
