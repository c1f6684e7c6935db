"""2. Durable execution under failure: every step runs exactly once per invocation."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from testkit.restate import ExampleService, Suite, SuiteFactory

SUBSCRIPTIONS = ["Netflix", "Disney+", "HBO Max"]


def add_many(suite: Suite, count: int, prefix: str, concurrency: int | None = None) -> list[str]:
    """Sends `count` `add` requests; returns their invocation ids (all answered 200)."""

    def add(i: int) -> str:
        answer = suite.ingress.post(
            "/SubscriptionService/add",
            json={"userId": f"{prefix}-{i}", "creditCard": "1234", "subscriptions": SUBSCRIPTIONS},
        )
        assert answer.status_code == 200, answer.text
        return answer.headers["x-restate-id"]

    with ThreadPoolExecutor(max_workers=concurrency or count) as pool:
        return list(pool.map(add, range(count)))


def assert_each_step_once(service: ExampleService, invocations: list[str]) -> None:
    runs = Counter(
        (invocation, step, args[1] if step == "create_subscription" else "")
        for invocation, step, args in service.executions()
        if invocation in invocations
    )
    expected = {(inv, "create_recurring_payment", "") for inv in invocations} | {
        (inv, "create_subscription", sub) for inv in invocations for sub in SUBSCRIPTIONS
    }
    assert set(runs) == expected, "a step is missing or unexpected"
    repeated = {step: n for step, n in runs.items() if n != 1}
    assert not repeated, f"completed steps ran again: {repeated}"


def injected_failures(service: ExampleService) -> int:
    return sum(1 for r in service.records() if r["message"].startswith("injected failure"))


def test_random_failures_every_step_runs_once(suite: Suite) -> None:
    service = suite["subscriptions"]
    before = injected_failures(service)
    invocations = add_many(suite, 20, "durable")
    assert injected_failures(service) > before, "failures were meant to be injected (p=0.5/0.3)"
    assert_each_step_once(service, invocations)
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'restate_handler_failures_total{handler="add",kind="retryable"' in metrics


def test_crash_mode_kills_the_process_and_invocations_complete_once(
    make_suite: SuiteFactory,
) -> None:
    suite = make_suite(
        "subscriptions",
        env={
            "FAILURE_MODE": "crash",
            "FAILURE_PROBABILITIES": (
                '{"create_recurring_payment": 0.3, "create_subscription": 0.3}'
            ),
        },
    )
    service = suite["subscriptions"]
    service.supervise()  # restart it when it dies, as Kubernetes would
    # One invocation at a time: a crash then only interrupts the step that crashed, and every
    # earlier step's result is already in Restate's journal (the SDK waits for that before it
    # goes on). With several invocations in one process, a crash caused by one can also hit
    # another between doing a step and Restate recording it: that step runs again, with the
    # same payment id, which is why the example hands the provider an idempotency key.
    invocations = add_many(suite, 6, "crash", concurrency=1)
    assert service.restarts > 0, "crash mode was meant to kill the process"
    crashes = [r for r in service.records() if r["message"].startswith("injected failure")]
    assert len(crashes) == service.restarts
    assert_each_step_once(service, invocations)
