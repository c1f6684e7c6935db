"""A step's log line names the attempt that ran it and the step's entry in Restate's journal,
so a side effect can be matched to what Restate recorded (the soak's duplicate verdict does):
here with failed attempts retried in the same process (`raise`) and in a new one after a
crash (`FAILURE_MODE=crash`), checked against `sys_journal` and `sys_journal_events`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from reliability.common import journals
from testkit.restate import SuiteFactory

SUBSCRIPTIONS = ["Netflix", "Disney+", "HBO Max"]


@pytest.mark.parametrize("mode", ["raise", "crash"])
def test_step_lines_carry_their_attempt_and_journal_entry(
    make_suite: SuiteFactory, mode: str
) -> None:
    suite = make_suite(
        "subscriptions",
        env={
            "FAILURE_MODE": mode,
            "FAILURE_PROBABILITIES": (
                '{"create_recurring_payment": 0.3, "create_subscription": 0.3}'
            ),
        },
    )
    service = suite["subscriptions"]
    service.supervise()
    # One at a time: every attempt of an invocation then ends with its own crash or its end.
    invocations = []
    for i in range(6):
        answer = suite.ingress.post(
            "/SubscriptionService/add",
            json={"userId": f"user-{i}", "creditCard": "1234", "subscriptions": SUBSCRIPTIONS},
        )
        assert answer.status_code == 200, answer.text
        invocations.append(answer.headers["x-restate-id"])
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in service.records():
        if r.get("invocation_id") in invocations:
            lines[r["invocation_id"]].append(r)
    failed = {i: [r for r in lines[i] if r["message"].startswith("injected")] for i in lines}
    assert sum(map(len, failed.values())) > 0, "failures were meant to be injected"
    assert (service.restarts > 0) is (mode == "crash")
    recorded = journals(suite.server, invocations)

    for invocation in invocations:
        records = lines[invocation]
        # `<pid>.<n>`, of the very process that wrote the line.
        assert all(r["attempt"].split(".")[0] == str(r["pid"]) for r in records), records
        # A new attempt after each failure (Restate retried), one for the final run.
        attempts = {r["attempt"] for r in records}
        assert len(attempts) == len(failed[invocation]) + 1, records
        # Restate recorded the failed attempts (a repeat of the same error after the same entry
        # once): the injected error itself when the process stays.
        journal = recorded[invocation]
        assert bool(journal.failed_attempts) is bool(failed[invocation]), journal
        if mode == "raise":
            assert all("injected" in e[2] for e in journal.failed_attempts), journal
        # Each executed step names its journal entry, whose stored result is the one it logged.
        executed = [r for r in records if r["message"] == "stub executed"]
        assert {r["run"] for r in executed} == set(journal.runs), (executed, journal)
        for r in executed:
            assert journal.runs[r["run"]].result == r["result"], (r, journal.runs[r["run"]])
