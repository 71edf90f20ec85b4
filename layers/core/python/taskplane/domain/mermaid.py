"""A workflow's graph as Mermaid flowchart text (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskplane.domain.workflow import Workflow

_STYLES = {
    "PENDING": "fill:#f4f4f5,stroke:#a1a1aa",
    "RUNNING": "fill:#e0f2fe,stroke:#0284c7",
    "RETRYING": "fill:#fef9c3,stroke:#ca8a04",
    "SUCCEEDED": "fill:#dcfce7,stroke:#16a34a",
    "FAILED": "fill:#fee2e2,stroke:#dc2626",
    "SKIPPED": "fill:#f4f4f5,stroke:#a1a1aa,stroke-dasharray:4",
}


def target_label(target: Mapping[str, Any] | None) -> str:
    """``lambda:charge``, ``http:POST https://...``, ``builtin:sleep``."""
    if not target:
        return ""
    kind = str(target.get("type", "?"))
    if kind == "http":
        return f"http:{target.get('method', 'POST')} {target.get('url', '')}"
    for name in ("name", "function", "queue_url", "bus"):
        if target.get(name):
            return f"{kind}:{target[name]}"
    return kind


def _text(value: str) -> str:
    # Mermaid labels are quoted; these characters would end or break the quoted text.
    for raw, entity in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        value = value.replace(raw, entity)
    return value


def to_mermaid(workflow: Workflow, states: Mapping[str, str] | None = None) -> str:
    """``flowchart TD`` text: one box per node (id, target, undo target), one arrow per need.

    With ``states`` (node id -> node state), boxes are coloured by state, for a run's picture.

    Examples
    --------
    >>> from taskplane.domain.workflow import parse_workflow
    >>> wf = parse_workflow(
    ...     "nodes: [{id: a, target: {type: builtin, name: echo}}, {id: b, needs: [a], target: {type: builtin, name: echo}}]",
    ...     name="demo",
    ... )
    >>> print(to_mermaid(wf))
    flowchart TD
      n0["a<br/>builtin:echo"]
      n1["b<br/>builtin:echo"]
      n0 --> n1
    """
    key = {node.id: f"n{i}" for i, node in enumerate(workflow.nodes)}
    lines = ["flowchart TD"]
    for node in workflow.nodes:
        parts = [node.id, target_label(node.target)]
        if node.compensate:
            parts.append(f"undo: {target_label(node.compensate)}")
        lines.append(f'  {key[node.id]}["{"<br/>".join(_text(p) for p in parts)}"]')
    lines += [f"  {key[a]} --> {key[b]}" for a, b in workflow.edges]
    if states:
        used = sorted({s for s in states.values() if s in _STYLES})
        lines += [f"  classDef {s.lower()} {_STYLES[s]}" for s in used]
        for node in workflow.nodes:
            state = states.get(node.id)
            if state in _STYLES:
                lines.append(f"  class {key[node.id]} {state.lower()}")
    return "\n".join(lines)
