"""moto_patches' speed-ups (3-6) keep moto's answers: cached parses, the tree copy, cached action names."""

from __future__ import annotations

import copy
from typing import Any

import pytest

pytestmark = pytest.mark.integration

TRANSITION = (
    "SET #state = :new, #history = list_append(#history, :h), updated_at = :now, #f0 = :f0 "
    "ADD attempts :one REMOVE #r0"
)
EXPRESSIONS = [
    TRANSITION,
    "SET a = if_not_exists(a, :z) + :one, b[2].c = :v DELETE s :x",
    "REMOVE a[1], a[3]",
    "SET #n = :v",
]


def _shape(node: Any, parent: Any = None) -> Any:
    """A node tree as nested tuples, checking every parent link on the way."""
    from moto.dynamodb.parsing.ast_nodes import Node

    if not isinstance(node, Node):
        return repr(node)
    assert node.parent is parent
    attrs = sorted((k, repr(v)) for k, v in node.__dict__.items() if k not in ("parent", "children"))
    return type(node).__name__, attrs, [_shape(c, node) for c in node.children or []]


def _nodes(node: Any) -> list[Any]:
    from moto.dynamodb.parsing.ast_nodes import Node

    if not isinstance(node, Node):
        return []
    return [node, *(n for c in node.children or [] for n in _nodes(c))]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_tree_copy_is_a_deepcopy(aws: Any, expression: str) -> None:
    # Given a parsed update expression
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    from taskplane.local.moto_patches import copy_tree

    tree = UpdateExpressionParser.make(expression)
    # When it is copied node by node
    copied = copy_tree(tree)
    # Then it has deepcopy's shape, parent links into itself, and no node shared with the original
    assert _shape(copied) == _shape(copy.deepcopy(tree))
    assert not {id(n) for n in _nodes(copied)} & {id(n) for n in _nodes(tree)}


def test_update_expression_parsed_once_and_errors_still_raised(aws: Any) -> None:
    from moto.dynamodb.exceptions import InvalidUpdateExpression
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    # Given the same text twice, then a broken one twice
    # Then the tree is the kept one, and the broken text raises every time (nothing kept for it)
    assert UpdateExpressionParser.make(TRANSITION) is UpdateExpressionParser.make(TRANSITION)
    for _ in range(2):
        with pytest.raises(InvalidUpdateExpression):
            UpdateExpressionParser.make("SET a = = :v")


def test_same_expressions_with_new_values_give_moto_answers(aws: Any) -> None:
    # Given an item updated again and again with the same expression texts and different values
    ddb = aws.session.client("dynamodb")
    table = aws.settings.tasks_table
    key = {"pk": {"S": "t#0"}, "sk": {"S": "x"}}
    ddb.put_item(
        TableName=table,
        Item={**key, "state": {"S": "A"}, "history": {"L": []}, "gone": {"S": "y"}, "attempts": {"N": "0"}},
    )
    for i, (old, new) in enumerate([("A", "B"), ("B", "C"), ("C", "D")]):
        # When a conditional transition runs
        answer = ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression=TRANSITION,
            ConditionExpression="attribute_exists(#pk) AND #state = :expected AND attempts = :attempts",
            ExpressionAttributeNames={
                "#state": "state",
                "#history": "history",
                "#pk": "pk",
                "#f0": "f",
                "#r0": "gone",
            },
            ExpressionAttributeValues={
                ":new": {"S": new},
                ":h": {"L": [{"S": new}]},
                ":now": {"N": str(i)},
                ":f0": {"S": f"v{i}"},
                ":one": {"N": "1"},
                ":expected": {"S": old},
                ":attempts": {"N": str(i)},
            },
            ReturnValues="ALL_NEW",
        )["Attributes"]
        # Then each call used its own values
        assert answer["state"] == {"S": new}
        assert answer["f"] == {"S": f"v{i}"}
        assert answer["attempts"] == {"N": str(i + 1)}
        assert answer["history"]["L"][-1] == {"S": new} and len(answer["history"]["L"]) == i + 1
        assert "gone" not in answer
    # And a condition that no longer holds still fails, with the item as it is
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as failed:
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #state = :new",
            ConditionExpression="attribute_exists(#pk) AND #state = :expected",
            ExpressionAttributeNames={"#state": "state", "#pk": "pk"},
            ExpressionAttributeValues={":new": {"S": "E"}, ":expected": {"S": "A"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert failed.value.response["Item"]["state"] == {"S": "D"}
    # And an expression naming an undefined value is refused as moto refuses it
    with pytest.raises(ddb.exceptions.ClientError, match="attribute value used in expression is not defined"):
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #state = :missing",
            ExpressionAttributeNames={"#state": "state"},
        )


def test_action_names_follow_a_patched_handler(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core import responses
    from moto.dynamodb.responses import DynamoHandler

    # Given the action names of a handler class, listed once
    before = responses.method_names_from_class(DynamoHandler)
    assert "update_item" in before and "frobnicate" not in before
    # When a test adds an action to the class
    monkeypatch.setattr(DynamoHandler, "frobnicate", lambda self: None, raising=False)
    # Then the list is made again
    assert "frobnicate" in responses.method_names_from_class(DynamoHandler)


def test_in_flight_groups_are_read_from_a_copy_another_receive_cannot_change(aws: Any) -> None:
    """moto's ReceiveMessage iterates the queue's in-flight set while other receivers add to it: a set
    that changes while it is iterated raises instead of answering (patch 10 reads a copy)."""
    from moto.sqs.models import Queue

    class Changing(set):  # stands in for another thread adding an in-flight message mid-iteration
        def __iter__(self) -> Any:
            for message in super().__iter__():
                self.add(_Message(None))
                yield message

    class _Message:
        def __init__(self, group_id: str | None) -> None:
            self.group_id = group_id

    queue = Queue.__new__(Queue)
    queue._pending_messages = Changing({_Message("a"), _Message(None), _Message("b")})
    assert queue.pending_message_groups == {"a", "b"}
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        {m.group_id for m in queue._pending_messages}  # what moto's own property does
