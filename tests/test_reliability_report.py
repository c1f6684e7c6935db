"""reliability/report.py renders the recorded results (docs/reliability.json): every field the
templates name is filled from the run, none is left out or typed by hand."""

from __future__ import annotations

import json

from reliability import report


def test_the_recorded_results_render_with_their_figures() -> None:
    data = json.loads(report.RESULTS.read_text())
    fuzz = report.render_fuzz(data["fuzz"])
    after, unreachable = data["fuzz"]["after"], data["fuzz"]["unreachable_deployment"]
    assert "$" not in fuzz.replace("$$", "")  # no placeholder left unfilled
    for name in (*report.AFTER_FIELDS, *report.UNREACHABLE_FIELDS):
        value = after[name] if name in after else unreachable[name]
        assert str(value) in fuzz, name
    assert report.render(data).count("|---|") >= 5  # the soak's and the fuzz run's tables
