"""`taskplane dev` honours the policy it is given: environment > --strict > local defaults."""

from __future__ import annotations

import json

import pytest

from taskplane.local.policy import LOCAL_DEFAULT, SettingError, describe, local_settings
from taskplane.settings import PlatformSettings

pytestmark = pytest.mark.unit

#: What create_resources answers: resource names plus the friendly local defaults.
LOCAL = PlatformSettings(
    tasks_table="local-tasks",
    max_lane_depth=2_000,
    allow_private_http=True,
    targets_allowed_by_default=True,
)


def test_local_defaults_stay_friendly_when_nothing_is_set():
    settings, origin = local_settings(LOCAL, {})
    assert settings.allow_private_http and settings.targets_allowed_by_default
    assert settings.max_lane_depth == 2_000
    assert set(origin.values()) == {LOCAL_DEFAULT}


def test_strict_takes_the_aws_defaults_for_the_two_switches():
    settings, origin = local_settings(LOCAL, {}, strict=True)
    assert not settings.allow_private_http and not settings.targets_allowed_by_default
    assert origin["TASKPLANE_ALLOW_PRIVATE_HTTP"] == "--strict"
    assert settings.max_lane_depth == 2_000  # moto's limit stays: strict is about policy


def test_the_environment_wins_over_strict_and_defaults_and_resource_names_stay_local():
    env = {
        "TASKPLANE_TARGET_ALLOWLISTS": json.dumps({"acme": ["lambda:orders-*"]}),
        "TASKPLANE_ALLOW_PRIVATE_HTTP": "true",
        "TASKPLANE_MAX_LANE_DEPTH": "40",
        "TASKPLANE_TENANT_INFLIGHT_QUOTA": "7",
        "TASKPLANE_TASK_ROUTES": json.dumps(
            {"acme": [{"name": "c", "labels": {"env": "canary"}, "percent": 10, "lambda_alias": "next"}]}
        ),
        "TASKPLANE_EXTERNAL_EVENTS": json.dumps({"acme": [{"bus": "default", "sources": ["aws.s3"]}]}),
        "TASKPLANE_TASKS_TABLE": "someone-elses-table",  # a resource name: never taken locally
    }
    settings, origin = local_settings(LOCAL, env, strict=True)
    assert settings.target_allowlists == {"acme": ["lambda:orders-*"]}
    assert settings.allow_private_http  # the environment over --strict
    assert not settings.targets_allowed_by_default  # --strict, not overridden
    assert (settings.max_lane_depth, settings.tenant_inflight_quota) == (40, 7)
    assert settings.tasks_table == "local-tasks"
    assert origin["TASKPLANE_MAX_LANE_DEPTH"] == "$TASKPLANE_MAX_LANE_DEPTH"
    lines = "\n".join(describe(settings, origin))
    assert "allow-lists for acme; other tenants: builtins only" in lines
    assert (
        "[$TASKPLANE_TARGET_ALLOWLISTS]" in lines
        and "[--strict]" not in lines.split("private HTTP")[1].split("\n")[0]
    )
    assert "1 rule(s)" in lines and "acme: default (aws.s3)" in lines and "40 messages" in lines


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("TASKPLANE_TARGET_ALLOWLISTS", "{not json"),
        ("TASKPLANE_MAX_LANE_DEPTH", "many"),
        ("TASKPLANE_TASK_ROUTES", json.dumps({"acme": [{"name": "c", "percent": 300}]})),
        ("TASKPLANE_EXTERNAL_EVENTS", json.dumps({"acme": [{"bus": "default", "sources": ["*"]}]})),
    ],
)
def test_an_unreadable_variable_is_named(var, value):
    with pytest.raises(SettingError, match=var):
        local_settings(LOCAL, {var: value})
