"""A tenant's share of the account's state machines is counted over every page of its workflows."""

from __future__ import annotations

from typing import Any

import pytest

from taskplane.domain.errors import LimitExceeded
from taskplane.services.workflows import WorkflowService

DEFINITION = {"name": "new", "nodes": [{"id": "a", "target": {"type": "builtin", "name": "echo"}}]}


class Pages:
    """A workflow store holding ``held`` workflows of one tenant, answered 100 to a page."""

    def __init__(self, held: int) -> None:
        self.names = [f"w{i:04d}" for i in range(held)]
        self.pages_read = 0

    def get(self, tenant: str, name: str) -> None:
        return None

    def list_workflows(self, tenant: str, *, limit: int = 100, cursor: str | None = None) -> Any:
        self.pages_read += 1
        rest = [n for n in self.names if cursor is None or n > cursor]
        page = rest[:limit]
        return page, (page[-1] if len(rest) > limit else None)


class Published(Exception):
    """The check let the definition through to Step Functions."""


class Sfn:
    def machine_name(self, tenant: str, name: str) -> str:
        return name

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        raise Published


def service(held: int, limit: int) -> tuple[WorkflowService, Pages]:
    store = Pages(held)
    svc = WorkflowService(
        store=store,  # type: ignore[arg-type]
        runs=None,  # type: ignore[arg-type]
        sfn=Sfn(),  # type: ignore[arg-type]
        clock=None,  # type: ignore[arg-type]
        step_function_arn="arn",
        max_workflows=limit,
    )
    return svc, store


@pytest.mark.parametrize("held", [250, 251])
def test_a_share_held_across_pages_refuses_a_new_workflow(held):
    # Given a tenant with 250 or more workflows (three pages) and a share of 250
    svc, store = service(held, 250)
    # When it publishes a new one, it is refused, naming the share
    with pytest.raises(LimitExceeded, match="250 workflow"):
        svc.put("acme", "new", DEFINITION)
    assert store.pages_read == 3


def test_one_place_left_lets_the_new_workflow_through():
    # Given 249 workflows and a share of 250: the new one goes on to Step Functions
    svc, store = service(249, 250)
    with pytest.raises(Published):
        svc.put("acme", "new", DEFINITION)
    assert store.pages_read == 3


def test_a_share_of_nothing_refuses_the_first_workflow():
    svc, _ = service(0, 0)
    with pytest.raises(LimitExceeded):
        svc.put("acme", "new", DEFINITION)
