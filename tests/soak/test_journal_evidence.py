"""The soak's rule for a step executed twice (reliability.soak.journal_evidence), on journals
as `reliability.common.journals` reads them: excused only when Restate's journal shows that
the first execution's result never made it in. (The short soak runs it on real journals.)"""

from __future__ import annotations

from typing import Any

from reliability.common import Journal, JournaledRun
from reliability.soak import journal_evidence

T1 = 1000.0
T2 = 1001.0  # the second execution


def line(attempt: str, result: str) -> dict[str, Any]:
    return {"run": "create recurring payment", "attempt": attempt, "result": result}


def journal(completed_at: float, result: str) -> Journal:
    run = JournaledRun("create recurring payment", T1 - 0.001, 2, completed_at, result)
    return Journal({run.name: run}, [(T1 + 0.002, 1, "stream closed because of a broken pipe")])


def verdict(
    j: Journal | None, first: str = "7.1", second: str = "8.1", kills: tuple[float, ...] = ()
) -> tuple[bool, str]:
    return journal_evidence(
        (T1, line(first, "ref-a")), (T2, line(second, "ref-b")), line(second, "ref-b"), j, [*kills]
    )


def test_a_result_journaled_only_after_the_second_execution_is_evidence() -> None:
    unacknowledged, text = verdict(journal(T2 + 0.003, "ref-b"))
    assert unacknowledged, text
    assert "attempt 8.1's result" in text and "attempt failing at +0.002 s" in text
    # What ended the first attempt first is named: here restate-server's kill.
    assert "restate-server SIGKILLed at +0.00 s" in verdict(journal(T2, "ref-b"), kills=(T1,))[1]


def test_a_result_journaled_before_the_second_execution_was_acknowledged() -> None:
    unacknowledged, text = verdict(journal(T1 + 0.003, "ref-b"))
    assert not unacknowledged and "acknowledged" in text


def test_the_first_executions_result_in_the_journal_is_no_evidence() -> None:
    unacknowledged, text = verdict(journal(T2 + 0.003, "ref-a"))
    assert not unacknowledged and "not the last execution's result" in text


def test_two_executions_in_one_attempt_are_no_evidence() -> None:
    unacknowledged, text = verdict(journal(T2 + 0.003, "ref-b"), first="8.1")
    assert not unacknowledged and "both executions in attempt 8.1" in text


def test_no_journal_is_no_evidence() -> None:
    assert not verdict(None)[0]
    assert not verdict(Journal())[0]
