"""The bounded fuzz run (python -m reliability.fuzz --short): schemathesis with the OpenAPI
documents Restate serves for the four examples, raw malformed bodies, and hypothesis against
the services' own routes (/verify, /awakeables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.fuzz import SERVICES, SHORT, run_fuzz


@pytest.mark.timeout(240)
def test_fuzzing_finds_no_5xx_and_leaves_nothing_retrying(tmp_path: Path) -> None:
    result = run_fuzz(SHORT, tmp_path)
    summary = {k: v for k, v in result.items() if k not in ("raw", "answers", "config")}

    # Every example's every operation was fuzzed, and the services' routes.
    assert set(SERVICES) <= set(result["targets"]), summary
    assert {"/verify (text)", "/verify (bytes)", "/awakeables"} <= set(result["targets"])
    assert result["cases"] > 500, summary
    assert result["generation_errors"] == [], summary

    # No 5xx from a service, every 4xx of a service names the problem.
    assert result["failure_count"] == 0, summary
    assert all(t["5xx_service"] == 0 for t in result["targets"].values()), summary
    # Malformed bodies are 4xx naming the problem (or accepted where they are valid).
    assert result["raw_failures"] == [], summary
    # Schema-violating bodies are refused, also when sent one-way (the invocation's 400).
    assert result["negative_accepted"] == [], summary
    assert result["timeouts"] == [], summary

    after = result["after"]
    assert after["retrying"] == 0 and after["retried"] == 0, summary
    assert after["healthy"], summary
    assert after["greeter_mismatches"] == 0 and after["greeter_keys_checked"] > 0, summary
    assert after["documented_requests_ok"], summary
