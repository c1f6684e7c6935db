"""Figures the tests measure for the record (never asserted): printed where they are taken
(seen with `pytest -s`) and listed again at the end of every run, so that a figure quoted in a
note or a doc comes from a run anyone can repeat."""

from __future__ import annotations

import os

import pytest

_FIGURES: list[tuple[str, str, str]] = []


def record(key: str, value: object) -> None:
    """Records one figure of the running test."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    _FIGURES.append((test, key, str(value)))
    print(f"\n[measured] {key}: {value}", flush=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("measured (figures for the record, not asserted)")
    for test, key, value in _FIGURES:
        terminalreporter.write_line(f"{test}: {key}: {value}")
