"""Every rendering of the CLI: states, targets, field panels, tables that fit the terminal, JSON excerpts.

Commands hand a rendering to :meth:`~taskplane.cli.base.Context.show`, which prints the raw JSON
instead under ``--json``. The building blocks (:func:`badge`, :func:`fields_panel`, :class:`FitTable`,
:func:`simple_table`, :func:`json_excerpt`) are shared by tasks, schedules, workflows and runs, so a
state is coloured the same way everywhere and every table keeps ids and times whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

#: Colour of each state; a node that has not started (PENDING in a run) is dim, a waiting task blue.
TASK_STYLES = {
    "SCHEDULED": "blue",
    "PENDING": "blue",
    "RUNNING": "cyan",
    "RETRYING": "yellow",
    "TIMED_OUT": "yellow",
    "SUCCEEDED": "green",
    "FAILED": "red",
    "CANCELLED": "magenta",
}
SCHEDULE_STYLES = {"ACTIVE": "green", "PAUSED": "yellow", "ENDED": "dim"}
RUN_STYLES = {**TASK_STYLES, "COMPENSATED": "magenta", "SKIPPED": "dim", "PENDING": "dim"}


# -- building blocks ------------------------------------------------------------------------------


def badge(state: Any, styles: dict[str, str] = TASK_STYLES) -> Text:
    """A state in its colour (``?`` when there is none)."""
    text = str(state or "?")
    return Text(text, style=styles.get(text, ""))


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


def json_excerpt(value: Any, limit: int, *, indent: int | None = None) -> str:
    """JSON of ``value`` (a string as it is), cut at ``limit`` characters with a pointer to ``--json``."""
    if isinstance(value, str):
        text = value
    else:
        separators = None if indent else (", ", ": ")
        text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters, --json)"


def error_line(error: Any, limit: int = 160) -> str:
    """``Type: message`` of a task, node or run error, cut at ``limit`` characters."""
    if not isinstance(error, dict):
        return str(error)
    text = f"{error.get('type', 'error')}: {error.get('message', '')}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_detail(detail: Any) -> str:
    """One ``field: message`` line of an API error's details."""
    if isinstance(detail, dict):
        field = detail.get("field") or detail.get("loc") or detail.get("path")
        message = detail.get("message") or detail.get("msg")
        if isinstance(field, list):
            field = ".".join(str(p) for p in field)
        if message:
            return f"{field}: {message}" if field else str(message)
        return json.dumps(detail, ensure_ascii=False, default=str)
    return str(detail)


def format_error(error: Any) -> str:
    """One line for an ``{"code", "message", "details"}`` error object from a batch result."""
    if not isinstance(error, dict):
        return str(error)
    text = f"{error.get('code', 'error')}: {error.get('message', '')}".rstrip(": ")
    details = [format_detail(d) for d in error.get("details") or []]
    return text + (f" ({'; '.join(details)})" if details else "")


def took(started: str | None, finished: str | None) -> str:
    """``1.25s`` between two RFC 3339 times; ``…`` marks one still going (measured to now)."""

    def ms(text: str | None) -> float | None:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000 if text else None

    a, b = ms(started), ms(finished)
    if a is None:
        return ""
    end = b if b is not None else time.time() * 1000
    return f"{(end - a) / 1000:.2f}s" + ("" if b is not None else "…")


def fields_panel(
    title: str,
    rows: Iterable[tuple[str, RenderableType]],
    *,
    border: str = "",
    below: Sequence[RenderableType] = (),
) -> Panel:
    """A panel of ``name  value`` rows (names in bold), with more renderables under them."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for name, value in rows:
        grid.add_row(name, value)
    body: RenderableType = Group(grid, *below) if below else grid
    return Panel(body, title=Text(title), title_align="left", border_style=border, expand=False)


def simple_table(columns: Sequence[str], rows: Iterable[Sequence[RenderableType]], **options: Any) -> Table:
    """A borderless table with a header rule, cells kept on one line."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, **options)
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


class FitTable:
    """A table laid out for the width it is given: what people copy (ids, states, times) is never cut.

    While the row is too wide, the columns of ``give_way`` give way in order: ``(column, least)``
    narrows a column down to ``least`` characters (with an ellipsis), ``(column, None)`` drops it.
    Only as many steps are taken as the width needs; once columns are dropped, the narrowed ones get
    back what the dropped ones freed.
    """

    GAP = 3  # between columns of a SIMPLE_HEAD table without edge padding

    def __init__(
        self,
        columns: Sequence[str],
        rows: Sequence[dict[str, Text]],
        *,
        give_way: Sequence[tuple[str, int | None]] = (),
        widest: dict[str, int] | None = None,
        right: Iterable[str] = (),
    ) -> None:
        self.columns = list(columns)
        self.rows = rows
        self.give_way = list(give_way)
        self.widest = widest or {}
        self.right = set(right)

    def _natural(self) -> dict[str, int]:
        widths = {c: max([len(c), *(r[c].cell_len for r in self.rows)]) for c in self.columns}
        return {c: min(w, self.widest.get(c, w)) for c, w in widths.items()}

    def layout(self, max_width: int) -> dict[str, int]:
        """Column -> width of the columns shown, in order."""
        natural = self._natural()

        def excess(shown: list[str], widths: dict[str, int]) -> int:
            return sum(widths[c] for c in shown) + self.GAP * (len(shown) - 1) - max_width

        for steps in range(len(self.give_way) + 1):
            taken = self.give_way[:steps]
            dropped = {c for c, least in taken if least is None}
            shown = [c for c in self.columns if c not in dropped]
            narrowest = {**natural, **{c: min(natural[c], least) for c, least in taken if least is not None}}
            if excess(shown, narrowest) <= 0 or steps == len(self.give_way):
                break
        widths = dict(natural)
        for column, least in taken:
            over = excess(shown, widths)
            if over <= 0:
                break
            if least is not None and column in shown:
                widths[column] = max(min(least, natural[column]), widths[column] - over)
        return {c: widths[c] for c in shown}

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = self.layout(options.max_width)
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column, width in widths.items():
            table.add_column(
                column,
                width=width,
                no_wrap=True,
                overflow="ellipsis",
                justify="right" if column in self.right else "left",
            )
        for row in self.rows:
            table.add_row(*(row[c] for c in widths))
        yield table


def _paged(table: RenderableType, cursor: Any, hint: str) -> RenderableType:
    if not cursor:
        return table
    return Group(table, Text(hint.format(cursor=cursor), style="dim"))


# -- tasks ----------------------------------------------------------------------------------------


def render_submitted(task: dict[str, Any]) -> RenderableType:
    text = Text.assemble("submitted ", (str(task.get("task_id")), "bold"), "  ", badge(task.get("state")))
    if task.get("run_at"):
        text.append(f"  run_at {task['run_at']}")
    return text


def render_cancelled(task: dict[str, Any]) -> RenderableType:
    return Text.assemble("cancelled ", (str(task.get("task_id")), "bold"), "  ", badge(task.get("state")))


_TASK_TIMES = (
    "run_at",
    "created_at",
    "dispatched_at",
    "started_at",
    "finished_at",
    "next_attempt_at",
    "deadline",
)


def render_task(task: dict[str, Any]) -> RenderableType:
    """A panel with a task's fields, result or error, and its history."""
    rows: list[tuple[str, RenderableType]] = [
        ("state", badge(task.get("state"))),
        ("target", Text(target_label(task.get("target")))),
    ]
    rows += [(f, Text(str(task[f]))) for f in ("priority", "attempts") if task.get(f) is not None]
    if task.get("labels"):
        rows.append(("labels", Text(", ".join(f"{k}={v}" for k, v in task["labels"].items()))))
    rows += [(f, Text(str(task[f]))) for f in _TASK_TIMES if task.get(f)]
    if task.get("trace_id"):  # OTLP export on: the id to look the task's trace up by
        rows.append(("trace", Text(str(task["trace_id"]))))
    if task.get("result") is not None:
        rows.append(("result", Text(json_excerpt(task["result"], 2000, indent=2))))
    error = task.get("error")
    if error:
        message = error_line(error, limit=10_000) if isinstance(error, dict) else str(error)
        rows.append(("error", Text(message, style="red")))
    below = []
    history = task.get("history") or []
    if history:
        table = Table(title="history", title_justify="left", expand=False)
        table.add_column("at", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("detail")
        for entry in history:
            table.add_row(
                Text(str(entry.get("at", ""))),
                badge(entry.get("state")),
                Text(str(entry.get("detail") or "")),
            )
        below.append(table)
    border = TASK_STYLES.get(str(task.get("state")), "")
    return fields_panel(f"task {task.get('task_id')}", rows, border=border, below=below)


def render_task_list(page: dict[str, Any]) -> RenderableType:
    """A table of tasks, with a hint for the next page.

    Ids and timestamps are never cut; the target takes what is left (at most 60 characters), and on
    a narrow terminal the created_at column is dropped rather than folded.
    """
    items = page.get("items") or []
    if not items:
        return Text("no tasks", style="dim")
    rows = [
        {
            "task_id": Text(str(t.get("task_id", ""))),
            "state": badge(t.get("state")),
            "target": Text(target_label(t.get("target"))),
            "attempts": Text(str(t.get("attempts", ""))),
            "created_at": Text(str(t.get("created_at") or "")),
        }
        for t in items
    ]
    table = FitTable(
        ("task_id", "state", "target", "attempts", "created_at"),
        rows,
        give_way=(("target", 12), ("created_at", None)),
        widest={"target": 60},
        right=("attempts",),
    )
    return _paged(table, page.get("next_cursor"), "more tasks: taskplane list --cursor {cursor}  (or --all)")


# -- schedules ------------------------------------------------------------------------------------


def _next_fire(schedule: dict[str, Any]) -> str:
    if schedule.get("next_fire_at"):
        return str(schedule["next_fire_at"])
    return {"PAUSED": "(paused)", "ENDED": "(ended)"}.get(str(schedule.get("state")), "")


def render_schedule_change(verb: str, schedule: dict[str, Any]) -> RenderableType:
    """``paused <id>  PAUSED`` (with the next fire when there is one)."""
    text = Text.assemble(
        f"{verb} ",
        (str(schedule.get("schedule_id")), "bold"),
        "  ",
        badge(schedule.get("state"), SCHEDULE_STYLES),
    )
    if schedule.get("next_fire_at"):
        text.append(f"  next fire {schedule['next_fire_at']}")
    return text


def render_schedule(schedule: dict[str, Any], verb: str = "") -> RenderableType:
    """A panel with a schedule's fields, counters and task template."""
    rows: list[tuple[str, RenderableType]] = []
    if schedule.get("name"):
        rows.append(("name", Text(str(schedule["name"]))))
    rows.append(("state", badge(schedule.get("state"), SCHEDULE_STYLES)))
    rows.append(("cron", Text(f"{schedule.get('cron', '')}  ({schedule.get('timezone') or 'UTC'})")))
    rows.append(("next_fire_at", Text(_next_fire(schedule))))
    rows += [
        (f, Text(str(schedule[f])))
        for f in ("last_fire_at", "last_task_id", "start_at", "end_at")
        if schedule.get(f)
    ]
    rows.append(("fires", Text(f"{schedule.get('fires', 0)} (skipped {schedule.get('skipped', 0)})")))
    rows += [(f, Text(str(schedule[f]))) for f in ("misfire", "overlap") if schedule.get(f)]
    task = schedule.get("task")
    if not isinstance(task, dict):
        task = {}
    rows.append(("target", Text(target_label(task.get("target")))))
    # The rest of the template, one line per field (the API fills in timeout_s, retry and priority).
    for field, value in task.items():
        if field == "target" or value is None or value == {}:
            continue
        if field == "labels" and isinstance(value, dict):
            shown = ", ".join(f"{k}={v}" for k, v in value.items())
        else:
            shown = json_excerpt(value, 300)
        rows.append((field, Text(shown)))
    rows += [(f, Text(str(schedule[f]))) for f in ("created_at", "updated_at") if schedule.get(f)]
    title = f"schedule {schedule.get('schedule_id')}" + (f" ({verb})" if verb else "")
    return fields_panel(title, rows, border=SCHEDULE_STYLES.get(str(schedule.get("state")), ""))


def render_schedule_list(page: dict[str, Any]) -> RenderableType:
    """A table of schedules, with a hint for the next page.

    Ids, states and fire times are never cut (people copy and compare them). When the row is too
    wide, the name and then the zone give way down to a few characters each; then the skipped,
    fires, timezone and name columns are dropped in that order, and only then is the cron cut.
    """
    items = page.get("items") or []
    if not items:
        return Text("no schedules", style="dim")
    rows = [
        {
            "schedule_id": Text(str(s.get("schedule_id", ""))),
            "name": Text(str(s.get("name") or "")),
            "cron": Text(str(s.get("cron", ""))),
            "timezone": Text(str(s.get("timezone", ""))),
            "state": badge(s.get("state"), SCHEDULE_STYLES),
            "next_fire_at": Text(_next_fire(s)),
            "fires": Text(str(s.get("fires", 0))),
            "skipped": Text(str(s.get("skipped", 0))),
        }
        for s in items
    ]
    table = FitTable(
        ("schedule_id", "name", "cron", "timezone", "state", "next_fire_at", "fires", "skipped"),
        rows,
        give_way=(
            ("name", 8),
            ("timezone", 12),
            ("skipped", None),
            ("fires", None),
            ("timezone", None),
            ("name", None),
            ("cron", 9),
        ),
        right=("fires", "skipped"),
    )
    hint = "more schedules: taskplane schedule list --cursor {cursor}  (or --all)"
    return _paged(table, page.get("next_cursor"), hint)


# -- workflows and runs ---------------------------------------------------------------------------


def _routing(weights: dict[str, Any] | None, default: str) -> str:
    return ", ".join(f"v{v} {p}%" for v, p in (weights or {}).items()) or default


def render_published(reply: dict[str, Any]) -> RenderableType:
    verb = "published" if reply.get("published") else "unchanged"
    return Text.assemble(
        (f"{verb} ", "green" if reply.get("published") else "dim"),
        (str(reply.get("name")), "bold"),
        f" v{reply.get('version')}  ({len(reply.get('nodes') or [])} nodes, {len(reply.get('edges') or [])} edges)",
    )


def render_routing(reply: dict[str, Any]) -> RenderableType:
    routing = reply.get("routing") or {}
    if not routing:
        return Text(
            f"{reply.get('name')}: every new run uses the latest version (v{reply.get('latest_version')})"
        )
    return Text(f"{reply.get('name')}: new runs split {_routing(routing, '')}")


def render_workflows(page: dict[str, Any]) -> RenderableType:
    items = page.get("items") or []
    if not items:
        return Text("no workflows", style="dim")
    return simple_table(
        ("name", "latest", "nodes", "routing", "updated_at"),
        (
            (
                w["name"],
                f"v{w['latest_version']}",
                str(w.get("nodes", "")),
                _routing(w.get("routing"), "latest"),
                str(w.get("updated_at")),
            )
            for w in items
        ),
    )


def render_workflow(w: dict[str, Any]) -> RenderableType:
    rows: list[tuple[str, RenderableType]] = [("version", Text(f"v{w['version']} of {w['latest_version']}"))]
    if w.get("description"):
        rows.append(("description", Text(str(w["description"]))))
    rows.append(("routing", Text(_routing(w.get("routing"), "every run: latest"))))
    rows.append(("on_failure", Text(str(w.get("on_failure")))))
    rows.append(("versions", Text(", ".join(f"v{v['version']}" for v in w.get("versions") or []))))
    nodes = Table(title="nodes", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("id", "needs", "target", "undo"):
        nodes.add_column(column)
    for n in (w.get("definition") or {}).get("nodes", []):
        nodes.add_row(
            n["id"],
            ", ".join(n.get("needs") or []),
            target_label(n.get("target")),
            target_label(n.get("compensate")) if n.get("compensate") else "",
        )
    return fields_panel(f"workflow {w['name']}", rows, below=[nodes])


def render_run_started(run: dict[str, Any]) -> RenderableType:
    return Text.assemble("started ", (run["run_id"], "bold"), f"  {run['workflow']} v{run['version']}")


def render_run_change(verb: str, run: dict[str, Any]) -> RenderableType:
    """``resumed <id>  execution 2`` / ``cancelled <id>  CANCELLED``."""
    if verb == "resumed":
        return Text.assemble("resumed ", (run["run_id"], "bold"), f"  execution {run['executions']}")
    return Text.assemble(f"{verb} ", (run["run_id"], "bold"), "  ", badge(run["state"], RUN_STYLES))


def render_run(run: dict[str, Any]) -> RenderableType:
    """A panel with a run's state, its nodes and its compensations."""
    head = Text.assemble(
        (f"{run['workflow']} v{run['version']}", "bold"),
        "  ",
        badge(run["state"], RUN_STYLES),
        f"  {took(run.get('created_at'), run.get('finished_at'))}",
    )
    if run.get("phase") not in (None, "nodes", "done"):
        head.append(f"  ({run['phase']})", style="yellow")
    if run.get("executions", 1) > 1:
        head.append(f"  execution {run['executions']}")
    parts: list[RenderableType] = [head]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("node", "state", "tries", "took", "output / error"):
        table.add_column(column, no_wrap=column != "output / error", overflow="fold")
    for n in run["nodes"]:
        detail: Text | str = ""
        if n.get("error") and n["state"] in ("FAILED", "RETRYING", "RUNNING"):
            detail = Text(error_line(n["error"]), style="red")
        elif "output" in n:
            detail = json_excerpt(n["output"], 120)
        elif n.get("output_bytes"):
            detail = Text(f"({n['output_bytes']} bytes)", style="dim")
        table.add_row(
            n["id"],
            badge(n["state"], RUN_STYLES),
            str(n["attempts"] or ""),
            took(n.get("started_at"), n.get("finished_at")),
            detail,
        )
    parts.append(table)
    if run.get("compensations"):
        undo = Table(title="compensations, in the order they ran", title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("node", "state", "tries", "took", "error"):
            undo.add_column(column)
        for c in run["compensations"]:
            undo.add_row(
                c["node"],
                badge(c["state"], RUN_STYLES),
                str(c["attempts"]),
                took(c.get("started_at"), c.get("finished_at")),
                Text(error_line(c["error"]), style="red") if c.get("error") else "",
            )
        parts.append(undo)
    if run.get("error"):
        parts.append(Text(f"error: {error_line(run['error'])}", style="red"))
    return Panel(
        Group(*parts),
        title=Text(f"run {run['run_id']}"),
        title_align="left",
        border_style=RUN_STYLES.get(run["state"], ""),
        expand=False,
    )


def render_runs(page: dict[str, Any]) -> RenderableType:
    items = page.get("items") or []
    if not items:
        return Text("no runs", style="dim")
    table = simple_table(
        ("run_id", "version", "state", "created_at", "took"),
        (
            (
                r["run_id"],
                f"v{r['version']}",
                badge(r["state"], RUN_STYLES),
                str(r["created_at"]),
                took(r["created_at"], r.get("finished_at")),
            )
            for r in items
        ),
    )
    return _paged(table, page.get("next_cursor"), "more: --cursor {cursor}")


def run_change_line(now: str, key: str, state: str, attempts: int, error: Any) -> Text:
    """One line of a watched run whose node (or compensation, or the run) changed."""
    line = Text.assemble(f"{now}  {key:<24} ", badge(state, RUN_STYLES))
    if attempts and attempts > 1:
        line.append(f"  attempt {attempts}")
    if error and state in ("FAILED", "RETRYING"):
        line.append(f"  {error_line(error)}", style="red")
    return line
