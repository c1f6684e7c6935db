"""The short soak (python -m reliability.soak --short): a few hundred operations of the four
examples while service processes are SIGKILLed, crash themselves (FAILURE_MODE=crash) or get
SIGTERM, and restate-server is SIGKILLed once and restarted on its data. Checked from the
effects."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.soak import SHORT, failures, run_soak


@pytest.mark.timeout(300)
def test_short_soak_loses_nothing_and_repeats_only_inside_the_sigkill_window(
    tmp_path: Path,
) -> None:
    result = run_soak(SHORT, tmp_path)
    faults, totals, checks = result["faults"], result["totals"], result["checks"]
    summary = {k: result[k] for k in ("faults", "totals", "checks", "window", "errors")}

    # The faults really happened.
    assert len(faults["server_kills"]) == 1, summary
    assert faults["service_sigkills"] == SHORT.service_kills, summary
    assert faults["crashes"] > 0, summary
    assert [t["exit_code"] for t in faults["sigterms"]] == [0, 0], summary
    assert all(t["stopped_logged"] for t in faults["sigterms"]), summary
    assert totals["operations"] == SHORT.operations
    # The checks looked at something: greeter keys with their answers' sequence, building
    # blocks' runs with the object's counters.
    assert checks["greeter_sequences_checked"] > 0, summary
    assert checks["subscription_object"]["expected_cancelled"] > 0, summary

    # Nothing lost, nothing done twice outside the SIGKILL window, no wrong output: the same
    # verdict as the soak's exit code (every check that must be 0 is 0).
    assert failures(result) == [], summary
