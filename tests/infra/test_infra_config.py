"""Environment settings from the CDK context, and the dependency layer's requirement list (no synth)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import infra_synth
import pytest
from pydantic import ValidationError

from infra.config import ENVIRONMENTS_KEY, EnvironmentConfig, environments

pytestmark = pytest.mark.infra


@pytest.fixture
def test_env() -> dict[str, Any]:
    return infra_synth.test_env()


ROOT = Path(__file__).resolve().parents[2]


def test_every_environment_in_cdk_json_is_valid() -> None:
    # Given the context cdk.json passes to the app (read here without importing aws_cdk)
    context = json.loads((ROOT / "cdk.json").read_text())["context"]

    # When every environment is read
    configs = environments(context)

    # Then each validates, and no two share a prefix (physical names would collide)
    assert {c.name for c in configs} >= {"dev", "prod"}
    assert len({c.prefix for c in configs}) == len(configs)


def test_env_selects_one_environment_and_an_unknown_one_is_an_error(test_env: dict[str, Any]) -> None:
    context = {ENVIRONMENTS_KEY: {"a": {**test_env, "prefix": "tp-a"}, "b": {**test_env, "prefix": "tp-b"}}}
    assert [c.name for c in environments({**context, "env": "b"})] == ["b"]
    with pytest.raises(ValueError, match="no such environment"):
        environments({**context, "env": "c"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reserved_concurrency": {"worker": 10}}, "below the lanes' total MaximumConcurrency"),
        ({"reserved_concurrency": {"tick": 5}}, r"below 2 x shards"),
        # prod's reservations on a new account's quota: 100 must stay unreserved
        (
            {"reserved_concurrency": {"worker": 50, "tick": 8}, "account_concurrency_limit": 150},
            r"reserved_concurrency \(tick 8 \+ worker 50 = 58\) leaves fewer than 100 unreserved executions "
            r"of account_concurrency_limit 150: it needs a limit of at least 158",
        ),
        ({"alarm_topic_arn": "arn:aws:sqs:eu-west-1:111122223333:q"}, "alarm_topic_arn"),
        ({"lane_concurrency": {"high": 1, "default": 2, "low": 2}}, "MaximumConcurrency is 2-1000"),
        ({"lane_concurrency": {"high": 2, "default": 2}}, "exactly the lanes"),
        ({"targets": {"lambda_functions": ["*"]}}, "would allow every resource"),
        ({"targets": {"sqs_queues": ["arn:aws:sqs:us-east-1:111122223333:*"]}}, "would allow every resource"),
        ({"tenants": {"Bad_Name": {}}}, "tenant name"),
        ({"tenants": {"acme": {"allowed_targets": ["ftp:files.example"]}}}, "target pattern"),
        ({"shared_targets": ["lambda"]}, "target pattern"),
        ({"tenants": {"acme": {"task_routes": [{"name": "x", "percent": 101}]}}}, "percent"),
        ({"tenants": {}}, "at least 1"),
        ({"prefix": "Taskplane"}, "prefix"),
        ({"log_retention_days": 31}, "log_retention_days"),
        ({"unknown_setting": 1}, "unknown_setting"),
        ({"otlp_endpoint": "collector:4318"}, "OTLP endpoint is an http"),
        ({"otlp_endpoint": "https://c.example/?key=secret"}, "without a query"),
        ({"otlp_sample_ratio": 1.5}, "otlp_sample_ratio"),
        # Lambda's smallest memory is 128 MB
        ({"worker_memory_mb": 64}, r"worker_memory_mb\n.*greater than or equal to 128"),
        ({"tick_memory_mb": 100}, r"tick_memory_mb\n.*greater than or equal to 128"),
    ],
)
def test_a_bad_environment_fails_naming_the_problem(
    test_env: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        EnvironmentConfig.model_validate({**test_env, **changes})


def test_the_test_environment_itself_is_valid(test_env: dict[str, Any]) -> None:
    assert EnvironmentConfig.model_validate(test_env).prefix == "tp-test"


def test_the_worker_and_tick_memory_default_to_what_the_cost_bench_prices(test_env: dict[str, Any]) -> None:
    # bench/cost.py MEMORY_MB prices the defaults; a smaller worker or tick is a deploy-time choice
    # (BENCHMARKS.md prices each: less for the waits, slower cold starts)
    env = {k: v for k, v in test_env.items() if k not in ("worker_memory_mb", "tick_memory_mb")}
    cfg = EnvironmentConfig.model_validate(env)
    assert (cfg.worker_memory_mb, cfg.tick_memory_mb) == (256, 256)
    small = EnvironmentConfig.model_validate({**env, "worker_memory_mb": 128, "tick_memory_mb": 128})
    assert (small.worker_memory_mb, small.tick_memory_mb) == (128, 128)


def test_reservations_may_use_the_account_limit_minus_the_unreserved_hundred(
    test_env: dict[str, Any],
) -> None:
    reserved = {"worker": 50, "tick": 8}
    fits = EnvironmentConfig.model_validate(
        {**test_env, "reserved_concurrency": reserved, "account_concurrency_limit": 158}
    )
    assert fits.account_concurrency_limit == 158
    # and the default is Lambda's default regional quota
    assert EnvironmentConfig.model_fields["account_concurrency_limit"].default == 1000


def test_the_layer_installs_its_lock_with_hashes_and_is_named_by_it() -> None:
    # Given pyproject.toml's runtime dependencies and the layer's lock
    import tomllib

    from infra.capabilities.layers import (
        LAMBDA_IN,
        LAMBDA_LOCK,
        ROOT,
        layer_fingerprint,
        layer_requirements,
        pip_command,
    )

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]

    # Then the layer's input is that list without the CLI's terminal library, plus tz data for zoneinfo,
    # and it is what the lock was compiled from
    requirements = layer_requirements()
    assert [r for r in declared if not r.startswith("rich")] == [r for r in requirements if r != "tzdata"]
    assert "tzdata" in requirements
    # and the layer has the OTLP exporter, so turning export on is one variable (no rebuild)
    assert {"opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"} <= {
        r.split(">")[0].split("=")[0] for r in requirements
    }
    assert [line for line in LAMBDA_IN.read_text().splitlines() if not line.startswith("#")] == requirements
    # and pip installs exactly the lock, hash-checked, as manylinux aarch64 wheels for CPython 3.12
    command = pip_command(LAMBDA_LOCK, "/out/python")
    assert "--require-hashes" in command and command[command.index("-r") + 1] == str(LAMBDA_LOCK)
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.12"
    assert "manylinux2014_aarch64" in command
    assert command[command.index("--target") + 1] == "/out/python"
    # and the asset's hash follows the lock: one changed hash in it is a new layer
    changed = LAMBDA_LOCK.parent / "changed.lock.tmp"
    try:
        changed.write_text(LAMBDA_LOCK.read_text().replace("sha256:", "sha256:0", 1))
        assert layer_fingerprint(changed) != layer_fingerprint(LAMBDA_LOCK)
    finally:
        changed.unlink()
