"""Fidelity: a part of the end-to-end suite again on ``taskplane dev --backend moto``, where the stores,
lanes and bus are the AWS adapters (DynamoDB, SQS, EventBridge) on moto rather than SQLite.

The same test functions as on the default backend, given this module's ``dev``: tasks and retries,
local Lambda functions, tenants, batches and listing, large values through S3, delayed tasks through
the wheel, a trigger on the bus, schedules, and a workflow through the CLI. The adapters' own
contract (tests/contract) checks both sets call for call; this checks the runtime wired on each.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import DevServer
from .test_dev import (
    test_a_payload_too_large_for_a_request_is_uploaded_and_its_result_read_back,
    test_batch_and_list,
    test_echo_task_goes_pending_running_succeeded,
    test_fail_twice_succeeds_on_attempt_three,
    test_local_lambda_functions_run_in_process,
    test_second_tenant_is_isolated,
)
from .test_dev_wheel import (
    test_delayed_tasks_start_on_time_never_early,
    test_schedule_lifecycle_over_http,
    test_trigger_fires_for_an_event_a_task_puts_on_the_bus,
)
from .test_workflow_dev import test_cli_put_run_watch_graph_against_dev

#: one worker runs them all (make test: --dist loadgroup), so one moto dev server starts, not two
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("dev_moto")]

__all__ = [
    "test_a_payload_too_large_for_a_request_is_uploaded_and_its_result_read_back",
    "test_batch_and_list",
    "test_cli_put_run_watch_graph_against_dev",
    "test_delayed_tasks_start_on_time_never_early",
    "test_echo_task_goes_pending_running_succeeded",
    "test_fail_twice_succeeds_on_attempt_three",
    "test_local_lambda_functions_run_in_process",
    "test_schedule_lifecycle_over_http",
    "test_second_tenant_is_isolated",
    "test_trigger_fires_for_an_event_a_task_puts_on_the_bus",
]


@pytest.fixture
def dev(dev_moto: DevServer) -> Iterator[DevServer]:
    """This module's tests run on the moto backend."""
    assert "backend: moto" in dev_moto.banner, dev_moto.banner
    yield dev_moto
