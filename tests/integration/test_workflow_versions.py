# ruff: noqa: F811 - the fixtures are imported from workflow_fixtures
"""State machine versions are pruned: Step Functions keeps at most 1,000 per state machine."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from workflow_fixtures import put_yaml, wait_run, wf, wf_api  # noqa: F401

pytestmark = pytest.mark.integration

RELEASE = threading.Event()


def hold(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A node that runs until the test lets it finish (no sleep decides the order)."""
    RELEASE.wait(30)
    return {}


def definition(i: int, target: str = "{type: builtin, name: echo}") -> str:
    return f"nodes:\n  - {{id: a, target: {target}, payload: {{i: {i}}}}}\n"


@pytest.mark.parametrize("wf", [{"functions": {"hold": hold}}], indirect=True)
def test_old_versions_are_pruned_but_routed_running_and_recent_ones_kept(wf, wf_api, monkeypatch) -> None:
    from taskplane.services import workflows

    monkeypatch.setattr(workflows, "KEEP_VERSIONS", 3)
    RELEASE.clear()
    try:
        # Given v1 with a run still going, v2 and v3 that routing splits new runs between, and v4
        # whose run failed
        assert put_yaml(wf_api, "w", definition(1, "{type: lambda, function: hold}")).status == 201
        running = wf_api("POST", "/v1/workflows/w/runs", {"input": {}, "version": 1}).body
        wait_run(wf_api, running["run_id"], until=lambda r: r["nodes"][0]["state"] == "RUNNING")
        for i in (2, 3):
            assert put_yaml(wf_api, "w", definition(i)).status == 200
        assert wf_api("PUT", "/v1/workflows/w/routing", {"weights": {"2": 50, "3": 50}}).status == 200
        put_yaml(wf_api, "w", definition(4, "{type: builtin, name: fail}").replace("{i: 4}", "{times: 99}"))
        failed = wf_api("POST", "/v1/workflows/w/runs", {"input": {}, "version": 4}).body
        assert wait_run(wf_api, failed["run_id"])["state"] == "FAILED"

        # When four more versions are published
        for i in range(5, 9):
            assert put_yaml(wf_api, "w", definition(i)).status == 200

        # Then Step Functions keeps the newest three, the routed two and the running one
        sfn = wf.client("stepfunctions")
        machine = wf.platform.workflows.store.get("acme", "w").machine_arn
        listed = sfn.list_state_machine_versions(stateMachineArn=machine)["stateMachineVersions"]
        kept = sorted(int(v["stateMachineVersionArn"].rsplit(":", 1)[1]) for v in listed)
        assert kept == [1, 2, 3, 6, 7, 8]
        # and the API still shows every version, the pruned ones' ASL compiled from the stored definition
        shown = wf_api("GET", "/v1/workflows/w", query={"version": "4"})
        assert shown.status == 200 and [v["version"] for v in shown.body["versions"]] == list(range(1, 9))
        assert shown.body["asl"]["Comment"].endswith("v4: 1 nodes")
        # and a run of a pruned version cannot be resumed (no execution can start on it): 409, not 5xx
        resumed = wf_api("POST", f"/v1/runs/{failed['run_id']}/resume")
        assert resumed.status == 409 and resumed.body["error"]["details"][0]["problem"] == "version_pruned"
        # while the running one finishes on its version
        RELEASE.set()
        assert wait_run(wf_api, running["run_id"])["state"] == "SUCCEEDED"
    finally:
        RELEASE.set()


def test_a_routed_version_cannot_be_deleted_as_in_aws(wf) -> None:
    # moto is patched to answer as Step Functions documents: an alias's version is not deleted
    from botocore.exceptions import ClientError

    sfn = wf.client("stepfunctions")
    role = "arn:aws:iam::123456789012:role/r"
    made = sfn.create_state_machine(
        name="m",
        definition='{"StartAt":"p","States":{"p":{"Type":"Pass","End":true}}}',
        roleArn=role,
        publish=True,
    )
    version = made["stateMachineVersionArn"]
    sfn.create_state_machine_alias(
        name="live", routingConfiguration=[{"stateMachineVersionArn": version, "weight": 100}]
    )
    with pytest.raises(ClientError) as refused:
        sfn.delete_state_machine_version(stateMachineVersionArn=version)
    assert refused.value.response["Error"]["Code"] == "ConflictException"
