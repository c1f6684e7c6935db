"""Settings come from the environment and are validated at start, with a clear error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testkit.restate import EXAMPLES


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT: Input should be a valid integer"),
        ({"WORKERS": "0"}, "WORKERS: Input should be greater than or equal to 1"),
        ({"FAILURE_MODE": "explode"}, "FAILURE_MODE: Input should be 'raise' or 'crash'"),
        ({"FAILURE_PROBABILITIES": '{"create_subscription": 2}'}, "FAILURE_PROBABILITIES"),
        ({"FAILURE_PROBABILITIES": '{"teleport": 0.1}'}, "unknown steps ['teleport']"),
        ({"RESTATE_IDENTITY_KEYS": "not-a-key"}, "RESTATE_IDENTITY_KEYS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"RESTATE_IDENTITY_KEYS": "publickeyv1_0OIl"}, "RESTATE_IDENTITY_KEYS"),
        ({"PORT": "9080", "METRICS_PORT": "9080"}, "METRICS_PORT: Value error, must differ"),
        ({"SERVER": "uvicorn"}, "SERVER: Input should be 'hypercorn' or 'granian'"),
        ({"EVENT_LOOP": "trio"}, "EVENT_LOOP: Input should be 'asyncio' or 'uvloop'"),
    ],
)
def test_invalid_setting_stops_the_service_naming_it(env: dict[str, str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples_runtime", EXAMPLES["subscriptions"]],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
