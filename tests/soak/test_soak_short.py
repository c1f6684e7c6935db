"""The short soak (python -m reliability.soak --short): a few hundred operations of the four
examples while service processes are SIGKILLed, crash themselves (FAILURE_MODE=crash) or get
SIGTERM, and restate-server is SIGKILLed once and restarted on its data. Checked from the
effects."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.soak import SHORT, run_soak


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

    # Nothing lost: every operation completed, Restate has nothing left, every effect exists.
    assert totals["operations"] == SHORT.operations
    assert totals["lost"] == 0, summary
    assert checks["not_completed"] == 0, summary
    assert checks["client_gave_up"] == 0, summary
    assert checks["missing_effects"] == 0, summary
    # Nothing done twice, except a step caught in the documented SIGKILL window.
    assert totals["duplicated_outside_window"] == 0, summary
    assert checks["greeter_mismatches"] == 0 and checks["greeter_min_count"] >= 0, summary
    assert checks["workflows_run_twice"] == 0, summary
    assert checks["workflow_wrong_outputs"] == 0, summary
    assert checks["awakeables_wrong"] == 0, summary
    assert "with a different one" in checks["same_payment_id"]
    assert checks["same_payment_id"].endswith("0 with a different one"), summary
