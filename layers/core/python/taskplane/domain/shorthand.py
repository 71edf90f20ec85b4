"""The one-string forms of a target (``taskplane submit --target``, ``@task(target=...)``); pure, light."""

from __future__ import annotations

from typing import Any

#: The one-string forms of a target (``taskplane submit --target``, ``@task(target=...)``).
TARGET_SHORTHANDS = "builtin:NAME, lambda:FUNCTION, http:URL, sqs:QUEUE_URL or eventbridge:BUS"
_SHORTHAND_FIELDS = {
    "builtin": "name",
    "lambda": "function",
    "http": "url",
    "sqs": "queue_url",
    "eventbridge": "bus",
}


def target_from_shorthand(text: str) -> dict[str, Any]:
    """``builtin:echo`` -> ``{"type": "builtin", "name": "echo"}``, and the other forms.

    Only the first ``:`` separates, so ``lambda:arn:aws:lambda:...`` and ``http:https://...`` work; an
    ``http`` target is a POST. The result is checked where it is used, like any target.

    Raises
    ------
    ValueError
        Not ``TYPE:VALUE`` with a known type; the message lists the forms.

    Examples
    --------
    >>> target_from_shorthand("lambda:arn:aws:lambda:eu-west-1:1:function:resize")["function"]
    'arn:aws:lambda:eu-west-1:1:function:resize'
    """
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if not sep or not rest:
        raise ValueError(f"expected {TARGET_SHORTHANDS}; got {text!r}")
    if kind not in _SHORTHAND_FIELDS:
        raise ValueError(f"unknown target type {kind!r}: expected {TARGET_SHORTHANDS}")
    target: dict[str, Any] = {"type": kind, _SHORTHAND_FIELDS[kind]: rest}
    if kind == "http":
        target["method"] = "POST"
    return target
