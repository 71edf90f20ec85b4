"""No secrets in logs: authorization and x-api-key are masked wherever they appear."""

from __future__ import annotations

import io
import json
import logging

import pytest

from taskplane.observability import REDACTED, logger, redact

pytestmark = pytest.mark.unit


def test_redact_masks_secret_keys_at_any_depth_and_case():
    # Given headers and a nested structure carrying secrets
    value = {
        "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k1", "accept": "json"},
        "list": [{"x-api-key": "k2"}],
    }
    # When redacted / Then the secrets are gone and the rest is kept
    out = redact(value)
    assert out == {
        "headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED, "accept": "json"},
        "list": [{"x-api-key": REDACTED}],
    }
    assert "abc" not in json.dumps(out) and "k1" not in json.dumps(out)


def test_redact_masks_secrets_inside_text():
    # Given an error message that quotes a header / Then the value is masked
    assert "s3cret" not in redact("request failed: authorization: Bearer s3cret, status 401")
    assert "k3y" not in redact("sent x-api-key=k3y")


def test_the_platform_logger_never_writes_a_secret(capsys):
    # Given the platform logger writing to a buffer
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        # When a line carries headers with secrets as an extra and in its message
        logger.warning(
            "calling with authorization: Bearer top-secret", extra={"headers": {"x-api-key": "key-123"}}
        )
    finally:
        logger.removeHandler(handler)
    # Then neither secret reaches any output
    written = stream.getvalue() + capsys.readouterr().out + capsys.readouterr().err
    assert "top-secret" not in written and "key-123" not in written
