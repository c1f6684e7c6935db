"""reliability/report.py renders the recorded results (docs/reliability.json): every field the
templates name is filled from the run, none is left out or typed by hand."""

from __future__ import annotations

import json
from pathlib import Path

from reliability import mutants, report


def test_the_recorded_results_render_with_their_figures() -> None:
    data = json.loads(report.RESULTS.read_text())
    fuzz = report.render_fuzz(data["fuzz"])
    after, unreachable = data["fuzz"]["after"], data["fuzz"]["unreachable_deployment"]
    assert "$" not in fuzz.replace("$$", "")  # no placeholder left unfilled
    for name in (*report.AFTER_FIELDS, *report.UNREACHABLE_FIELDS):
        value = after[name] if name in after else unreachable[name]
        assert str(value) in fuzz, name
    assert report.render(data).count("|---|") >= 5  # the soak's and the fuzz run's tables


def test_a_soak_or_fuzz_run_keeps_the_mutants_section(tmp_path: Path) -> None:
    """Two runs write docs/reliability.md: the soak or fuzz run re-renders it whole, and must
    keep what the last `make mutants` wrote there."""
    data = json.loads(report.RESULTS.read_text())
    doc = tmp_path / "reliability.md"
    row = "| chart | a mutant | killed | `a test` | 3 |"
    mutants = f"{report.MUTANTS_BEGIN}\n{row}\n{report.MUTANTS_END}"
    doc.write_text(report.render(data) + f"\n## Mutants\n\n{mutants}\n")
    report.write(data, doc)
    assert doc.read_text().count(mutants) == 1
    assert doc.read_text().startswith(report.render(data).rstrip("\n"))


def test_a_mutants_run_with_only_keeps_the_other_rows() -> None:
    """`make mutants --only NAME` updates that mutant's row and keeps the others' rows, each
    with the time of the run that produced it."""
    a, b = [mutants.Mutant(n, "chart", "f", "x", "y", ("t",)) for n in ("mutant a", "mutant b")]
    first = mutants.report(
        [mutants.Outcome(a, "killed", "`t`", 3), mutants.Outcome(b, "error", "e", 1)], [a, b]
    )
    assert "1 of 2 mutants killed" in first
    second = mutants.report([mutants.Outcome(b, "killed", "`u`", 2)], [a, b], first)
    assert "2 of 2 mutants killed" in second
    rows = [line for line in second.splitlines() if line.startswith("| chart |")]
    assert [r.split(" | ")[1:4] for r in rows] == [
        ["mutant a", "killed", "`t`"],
        ["mutant b", "killed", "`u`"],
    ]
