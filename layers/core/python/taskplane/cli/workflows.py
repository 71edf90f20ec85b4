"""``taskplane workflow ...``: publish definitions, run them, watch runs, draw graphs, route canaries.

``workflow run FILE --local`` runs a definition on a throwaway local runtime in this process (no
``taskplane dev`` needed): the one-command way to try the examples.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text

from taskplane.cli.base import (
    CommandFailed,
    Context,
    UsageError,
    add_command,
    add_group,
    json_value,
    positive_int,
)
from taskplane.cli.render import (
    render_published,
    render_routing,
    render_run,
    render_run_change,
    render_run_started,
    render_runs,
    render_workflow,
    render_workflows,
    run_change_line,
)
from taskplane.client import Client, TaskplaneError, quote_segment

RUN_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "COMPENSATED", "CANCELLED"})
_YAML_SUFFIXES = (".yaml", ".yml")


def register(subparsers: Any) -> None:
    """Add ``taskplane workflow`` and its commands."""
    group = add_group(
        subparsers,
        "workflow",
        help="DAG workflows: publish, run, watch, graph, route",
        description=(
            "DAG workflows on Step Functions: each node runs once all of its needs are done;\n"
            "a failed run can compensate what completed (Saga), be resumed, or be cancelled."
        ),
        examples="""
            taskplane workflow put examples/preheat.yaml
            taskplane workflow run preheat --input '{"shards": 8}' --watch
            taskplane workflow run examples/order-fulfillment.yaml --local --functions examples/order_fulfillment.py --watch
            taskplane workflow put examples/order_flow.py                 # every @flow of a Python file
            taskplane workflow status 01JD7Z5M6R8W3Q4T2Y1X0V9B8N
            taskplane workflow graph order-fulfillment > graph.mmd
        """,
    )

    put = add_command(
        group,
        "put",
        help="publish definitions (YAML, JSON, or every @flow of a Python file) as new versions",
        description=(
            "Publish a workflow definition. A changed definition becomes a new version; an unchanged one\n"
            "publishes nothing. The name is --name, else the file's `name:`, else the file name.\n"
            "A Python FILE.py publishes every @flow it defines (taskplane.flow): each flow function is\n"
            "called once here, its task calls recorded as nodes, and the definition sent as YAML;\n"
            "--dry-run prints that YAML and sends nothing. No Python runs on the platform."
        ),
        examples="""
            taskplane workflow put examples/order-fulfillment.yaml
            taskplane workflow put examples/order_flow.py
            taskplane workflow put examples/order_flow.py --dry-run > order-flow.yaml
            taskplane workflow put flow.json --name nightly
            cat flow.yaml | taskplane workflow put - --name nightly
        """,
        handler=_cmd_put,
    )
    put.add_argument("file", metavar="FILE", help="YAML, JSON or Python (.py) file ('-' reads stdin)")
    put.add_argument("--name", help="workflow name (default: the definition's name, else the file name)")
    put.add_argument("--dry-run", action="store_true", help="print what would be sent, send nothing")

    listing = add_command(
        group,
        "list",
        help="list workflows",
        description="List this tenant's workflows with their latest version and routing.",
        examples="""
            taskplane workflow list
            taskplane workflow list --json
        """,
        handler=_cmd_list,
    )
    del listing

    get = add_command(
        group,
        "get",
        help="show a workflow: versions, routing, nodes (or its ASL)",
        description="Show a workflow's versions, routing and nodes; --asl prints the compiled state machine.",
        examples="""
            taskplane workflow get order-fulfillment
            taskplane workflow get order-fulfillment --version 2 --asl > machine.json
        """,
        handler=_cmd_get,
    )
    get.add_argument("name", metavar="NAME")
    get.add_argument("--version", type=positive_int, metavar="N", help="a published version (default latest)")
    get.add_argument("--asl", action="store_true", help="print the compiled Amazon States Language")

    graph = add_command(
        group,
        "graph",
        help="print a workflow (or a run) as Mermaid",
        description="Print the workflow's DAG as Mermaid flowchart text; with --run, coloured by node state.",
        examples="""
            taskplane workflow graph order-fulfillment
            taskplane workflow graph order-fulfillment --run 01JD7Z5M6R8W3Q4T2Y1X0V9B8N > run.mmd
        """,
        handler=_cmd_graph,
    )
    graph.add_argument("name", metavar="NAME")
    graph.add_argument(
        "--version", type=positive_int, metavar="N", help="a published version (default latest)"
    )
    graph.add_argument("--run", metavar="RUN_ID", help="colour the nodes by their state in this run")

    run = add_command(
        group,
        "run",
        help="start a run (of a published workflow or a file), optionally watching it",
        description=(
            "Start a run. NAME is a published workflow; a FILE is published first. --watch shows the\n"
            "nodes' states live until the run ends (exit 0 only when it SUCCEEDED). --local runs FILE on\n"
            "a local runtime started in this process, with --functions as its local Lambda functions."
        ),
        examples="""
            taskplane workflow run preheat --input '{"shards": 8}' --watch
            taskplane workflow run order-fulfillment --input @order.json --version 3
            taskplane workflow run examples/preheat.yaml --local --watch
        """,
        handler=_cmd_run,
    )
    run.add_argument("workflow", metavar="NAME|FILE")
    run.add_argument(
        "--input", type=json_value, default=None, metavar="JSON", help="run input (JSON or @file)"
    )
    run.add_argument(
        "--version", type=positive_int, metavar="N", help="run this version (default: the routing)"
    )
    run.add_argument("--idempotency-key", metavar="KEY", help="the same key and body answer the same run")
    run.add_argument("--watch", action="store_true", help="show node states live until the run ends")
    run.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="stop watching after S seconds"
    )
    run.add_argument("--local", action="store_true", help="run FILE on a local runtime in this process")
    run.add_argument(
        "--functions", metavar="FILE", help="with --local: Python file of local Lambda functions"
    )

    status = add_command(
        group,
        "status",
        help="show a run: state, nodes, compensations",
        description="Show a run: each node's state, attempts, times and error, and the compensations in order.",
        examples="""
            taskplane workflow status 01JD7Z5M6R8W3Q4T2Y1X0V9B8N
            taskplane workflow status 01JD7Z5M6R8W3Q4T2Y1X0V9B8N --watch
        """,
        handler=_cmd_status,
    )
    status.add_argument("run_id", metavar="RUN_ID")
    status.add_argument("--watch", action="store_true", help="follow the run until it ends")
    status.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="stop watching after S seconds"
    )

    runs = add_command(
        group,
        "runs",
        help="list a workflow's runs, newest first",
        description="List a workflow's runs, newest first, with their state.",
        examples="""
            taskplane workflow runs order-fulfillment --limit 20
        """,
        handler=_cmd_runs,
    )
    runs.add_argument("name", metavar="NAME")
    runs.add_argument("--limit", type=positive_int, metavar="N", help="runs per page")
    runs.add_argument("--cursor", help="continue from a previous page's next_cursor")

    for verb, help_, description in (
        ("resume", "run a failed or cancelled run again", "Resume a run: nodes that succeeded are skipped."),
        ("cancel", "stop a running run", "Cancel a run: no node starts any more; nothing is compensated."),
    ):
        command = add_command(
            group,
            verb,
            help=help_,
            description=description,
            examples=f"""
                taskplane workflow {verb} 01JD7Z5M6R8W3Q4T2Y1X0V9B8N
            """,
            handler=_cmd_resume if verb == "resume" else _cmd_cancel,
        )
        command.add_argument("run_id", metavar="RUN_ID")
        if verb == "resume":
            command.add_argument("--watch", action="store_true", help="follow the run until it ends")
            command.add_argument(
                "--timeout", type=float, default=600.0, metavar="S", help="stop watching after S s"
            )

    route = add_command(
        group,
        "route",
        help="split new runs between two versions (canary)",
        description="Send a share of new runs to each of (at most) two versions; --clear sends all to the latest.",
        examples="""
            taskplane workflow route order-fulfillment 3=90 4=10
            taskplane workflow route order-fulfillment --clear
        """,
        handler=_cmd_route,
    )
    route.add_argument("name", metavar="NAME")
    route.add_argument("weights", nargs="*", metavar="VERSION=PERCENT", type=_weight)
    route.add_argument("--clear", action="store_true", help="no split: every new run uses the latest version")


# -- argument types ------------------------------------------------------------------------------


def _weight(text: str) -> tuple[str, int]:
    version, sep, percent = text.partition("=")
    if not sep or not version.strip().isdigit() or not percent.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected VERSION=PERCENT such as 3=90, got {text!r}")
    return version.strip(), int(percent)


# -- API calls -----------------------------------------------------------------------------------


def _call(client: Client, method: str, path: str, **kwargs: Any) -> Any:
    return client.request(method, path, **kwargs)[1]


@dataclass(frozen=True)
class Outgoing:
    """One definition to send: its name, its text and type, and (for a flow) where each node is called."""

    name: str
    text: str
    content_type: str
    locations: dict[str, Any] = field(default_factory=dict)


def _read_definition(path: str) -> tuple[str, str]:
    """(text, content type) of a definition file; '-' reads stdin."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    is_json = path.endswith(".json") or (path == "-" and text.lstrip().startswith("{"))
    return text, "application/json" if is_json else "application/yaml"


def _name_for(path: str, text: str, given: str | None) -> str:
    if given:
        return given
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        document = None  # the API says what is wrong with it
    if isinstance(document, dict) and isinstance(document.get("name"), str):
        return document["name"]
    if path == "-":
        raise UsageError("give --name: the definition has no name and stdin has no file name")
    return Path(path).stem


def definitions(path: str, name: str | None = None) -> list[Outgoing]:
    """What ``workflow put`` sends for a file: its text, or the YAML of every ``@flow`` of a ``.py``.

    Raises
    ------
    CommandFailed
        A flow cannot be recorded (the message has the file and line).
    """
    if not path.endswith(".py"):
        text, content_type = _read_definition(path)
        return [Outgoing(_name_for(path, text, name), text, content_type)]
    if not Path(path).is_file():
        raise UsageError(f"no such file: {path}")
    from taskplane.flow import FlowError, flows_in

    try:
        recorded = [f.definition() for f in flows_in(path)]
    except FlowError as exc:
        raise CommandFailed(str(exc)) from None
    if name and len(recorded) > 1:
        names = ", ".join(d.name for d in recorded)
        raise UsageError(f"--name names one workflow; {path} defines {len(recorded)} flows ({names})")
    out = []
    for definition in recorded:
        if name:
            definition = dataclasses.replace(
                definition, name=name, document={**definition.document, "name": name}
            )
        out.append(
            Outgoing(definition.name, definition.yaml(), "application/yaml", dict(definition.locations))
        )
    return out


def send(client: Client, outgoing: Outgoing) -> dict[str, Any]:
    """PUT one definition; answers the API's reply. An error naming a node says where it is called."""
    try:
        return _call(
            client,
            "PUT",
            f"/v1/workflows/{quote_segment(outgoing.name)}",
            body=outgoing.text,
            headers={"Content-Type": outgoing.content_type},
        )
    except TaskplaneError as exc:
        for detail in exc.details:
            node = detail.get("node") if isinstance(detail, dict) else None
            where = outgoing.locations.get(node) if isinstance(node, str) else None
            if where is not None:
                detail["message"] = (
                    f"{detail.get('message', '')} (node {detail['node']!r} is called at {where})"
                )
        raise


def publish(client: Client, path: str, name: str | None = None) -> dict[str, Any]:
    """PUT the one definition of a file; answers the API's reply."""
    [outgoing] = _one(definitions(path, name), path)
    return send(client, outgoing)


def _one(found: list[Outgoing], path: str) -> list[Outgoing]:
    if len(found) != 1:
        names = ", ".join(o.name for o in found)
        raise UsageError(
            f"{path} defines {len(found)} flows ({names}): publish them with `taskplane workflow put {path}`, "
            "then run one by name"
        )
    return found


# -- handlers ------------------------------------------------------------------------------------


def _cmd_put(args: argparse.Namespace, ctx: Context) -> int:
    found = definitions(args.file, args.name)
    if args.dry_run:
        sys.stdout.write("---\n".join(o.text if o.text.endswith("\n") else o.text + "\n" for o in found))
        return 0
    replies = [send(ctx.client, outgoing) for outgoing in found]
    if ctx.json:
        ctx.print_json(replies[0] if len(replies) == 1 and not args.file.endswith(".py") else replies)
    else:
        for reply in replies:
            ctx.out.print(render_published(reply))
    return 0


def _cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    ctx.show(_call(ctx.client, "GET", "/v1/workflows"), render_workflows)
    return 0


def _cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    query = {"version": args.version} if args.version else None
    workflow = _call(ctx.client, "GET", f"/v1/workflows/{quote_segment(args.name)}", query=query)
    if args.asl:
        ctx.print_json(workflow["asl"])
        return 0
    ctx.show(workflow, render_workflow)
    return 0


def _cmd_graph(args: argparse.Namespace, ctx: Context) -> int:
    if args.run:
        text = _call(ctx.client, "GET", f"/v1/runs/{quote_segment(args.run)}", query={"format": "mermaid"})
    else:
        query = {"format": "mermaid", "version": args.version}
        text = _call(ctx.client, "GET", f"/v1/workflows/{quote_segment(args.name)}", query=query)
    sys.stdout.write(str(text).rstrip("\n") + "\n")
    return 0


def _cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    is_file = args.workflow == "-" or Path(args.workflow).is_file()
    if args.local:
        if not is_file:
            raise UsageError("--local runs a definition FILE (a runtime started here has no workflows yet)")
        if args.functions and not Path(args.functions).is_file():
            raise UsageError(f"argument --functions: no such file: {args.functions}")
        return _run_locally(args, ctx)
    if args.functions:
        raise UsageError("--functions goes with --local (taskplane dev takes its own --functions)")
    return _start_and_watch(args, ctx, ctx.client, is_file)


def _run_locally(args: argparse.Namespace, ctx: Context) -> int:
    try:
        from taskplane.local.runtime import LocalRuntime
    except ModuleNotFoundError as exc:  # pragma: no cover - needs the dev extras
        raise UsageError(f"the local runtime needs the dev extras (module {exc.name!r} is missing)") from None
    if not ctx.json:
        ctx.err.print(Text("starting a local runtime...", style="dim"))
    # The runtime's functions log to stdout, as in Lambda; here stdout is this command's answer.
    from taskplane.observability import logger

    logger.registered_handler.setStream(sys.stderr)  # type: ignore[attr-defined]
    runtime = LocalRuntime(port=0, functions_file=args.functions).start()
    try:
        return _start_and_watch(args, ctx, Client(runtime.url, runtime.api_key), True)
    finally:
        runtime.stop()


def _start_and_watch(args: argparse.Namespace, ctx: Context, client: Client, is_file: bool) -> int:
    name = args.workflow
    if is_file:
        published = publish(client, args.workflow)
        name = published["name"]
        if not ctx.json:
            ctx.err.print(render_published(published))
    body: dict[str, Any] = {"input": args.input}
    if args.version:
        body["version"] = args.version
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    run = _call(client, "POST", f"/v1/workflows/{quote_segment(name)}/runs", body=body, headers=headers)
    if not args.watch:
        ctx.show(run, render_run_started)
        return 0
    return watch(ctx, client, run["run_id"], args.timeout)


def _cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    if args.watch:
        return watch(ctx, ctx.client, args.run_id, args.timeout)
    run = _call(ctx.client, "GET", f"/v1/runs/{quote_segment(args.run_id)}")
    ctx.show(run, render_run)
    return 0 if run.get("state") in ("SUCCEEDED", "RUNNING") else 1


def _cmd_runs(args: argparse.Namespace, ctx: Context) -> int:
    query = {"limit": args.limit, "cursor": args.cursor}
    page = _call(ctx.client, "GET", f"/v1/workflows/{quote_segment(args.name)}/runs", query=query)
    ctx.show(page, render_runs)
    return 0


def _cmd_resume(args: argparse.Namespace, ctx: Context) -> int:
    run = _call(ctx.client, "POST", f"/v1/runs/{quote_segment(args.run_id)}/resume")
    if args.watch:
        return watch(ctx, ctx.client, run["run_id"], args.timeout)
    ctx.show(run, lambda r: render_run_change("resumed", r))
    return 0


def _cmd_cancel(args: argparse.Namespace, ctx: Context) -> int:
    run = _call(ctx.client, "POST", f"/v1/runs/{quote_segment(args.run_id)}/cancel")
    ctx.show(run, lambda r: render_run_change("cancelled", r))
    return 0


def _cmd_route(args: argparse.Namespace, ctx: Context) -> int:
    if args.clear == bool(args.weights):
        raise UsageError("give VERSION=PERCENT pairs, or --clear")
    weights = {} if args.clear else dict(args.weights)
    if len(weights) != len(args.weights or []):
        raise UsageError("a version is given twice")
    reply = _call(
        ctx.client, "PUT", f"/v1/workflows/{quote_segment(args.name)}/routing", body={"weights": weights}
    )
    ctx.show(reply, render_routing)
    return 0


# -- watching ------------------------------------------------------------------------------------


def watch(ctx: Context, client: Client, run_id: str, timeout_s: float, poll_s: float = 0.25) -> int:
    """Follow a run until it ends: a live table on a terminal, one line per change otherwise.

    Answers the exit code: 0 when the run SUCCEEDED, 1 when it ended otherwise or the wait timed out.
    """
    path = f"/v1/runs/{quote_segment(run_id)}"
    deadline = time.monotonic() + timeout_s
    run = _call(client, "GET", path)
    live_view = ctx.out.is_terminal and not ctx.json
    try:
        if live_view:
            from rich.live import Live

            with Live(render_run(run), console=ctx.out, refresh_per_second=8, transient=False) as live:
                while run["state"] not in RUN_TERMINAL and time.monotonic() < deadline:
                    time.sleep(poll_s)
                    run = _call(client, "GET", path)
                    live.update(render_run(run))
        else:
            seen: dict[str, tuple[str, int]] = {}
            while True:
                if not ctx.json:
                    _print_changes(ctx, run, seen)
                if run["state"] in RUN_TERMINAL or time.monotonic() >= deadline:
                    break
                time.sleep(poll_s)
                run = _call(client, "GET", path)
            ctx.show(run, render_run)
    except KeyboardInterrupt:
        ctx.err.print(
            Text(f"stopped watching; the run goes on: taskplane workflow status {run_id}", style="dim")
        )
        return 130
    if run["state"] not in RUN_TERMINAL:
        print(f"error: timeout: run {run_id} is still {run['state']} after {timeout_s:g}s", file=sys.stderr)
        return 1
    return 0 if run["state"] == "SUCCEEDED" else 1


def _print_changes(ctx: Context, run: dict[str, Any], seen: dict[str, tuple[str, int]]) -> None:
    """One line per node (or compensation, or run) whose state or attempt count changed."""
    now = datetime.now().strftime("%H:%M:%S.%f")[:-3]
    items = [(n["id"], n["state"], n["attempts"], n.get("error")) for n in run["nodes"]]
    items += [(f"undo {c['node']}", c["state"], c["attempts"], c.get("error")) for c in run["compensations"]]
    items.append(("run", run["state"], run.get("executions", 1), run.get("error")))
    for key, state, attempts, error in items:
        if seen.get(key) == (state, attempts):
            continue
        seen[key] = (state, attempts)
        ctx.out.print(run_change_line(now, key, state, attempts, error))


__all__ = ["publish", "register", "render_run", "watch"]
