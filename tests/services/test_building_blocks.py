"""6. Building blocks: idempotency, an awakeable resolved from outside, timers that hold."""

from __future__ import annotations

import time

import httpx

from testkit.processes import wait_until
from testkit.restate import ExampleService, Suite, SuiteFactory


def resolve_awakeable(suite: Suite, service: ExampleService, invocation: str, value: str) -> None:
    """Does what a user does: looks the awakeable up on the service and resolves it."""
    pending: dict[str, str] = {}

    def announced() -> bool:
        pending.update(httpx.get(f"{service.url}/awakeables").json())
        return invocation in pending

    wait_until(announced, 30, "the awakeable to be announced")
    answer = suite.ingress.post(f"/restate/awakeables/{pending[invocation]}/resolve", json=value)
    assert answer.status_code in (200, 202), answer.text


def test_idempotency_key_deduplicates(suite: Suite) -> None:
    headers = {"idempotency-key": "charge-once"}
    first = suite.ingress.post("/MyService/run/send", headers=headers)
    second = suite.ingress.post("/MyService/run/send", headers=headers)
    invocation = first.json()["invocationId"]
    assert second.json() == {"invocationId": invocation, "status": "PreviouslyAccepted"}

    resolve_awakeable(suite, suite["building-blocks"], invocation, "hi")
    # A request-response call with the same key gets the same invocation's result.
    third = suite.ingress.post("/MyService/run", headers=headers)
    assert third.headers["x-restate-id"] == invocation
    assert third.json() == {"rpcResult": "SUCCESS", "greeting": "hi", "charged": True}
    charges = [
        step for inv, step, _ in suite["building-blocks"].executions()
        if inv == invocation and step == "charge_bank_account"
    ]  # fmt: skip
    assert charges == ["charge_bank_account"]


def object_status(suite: Suite) -> str | None:
    rows = suite.server.query(
        "SELECT value_utf8 FROM state WHERE service_name = 'SubscriptionObject' "
        "AND service_key = 'my-sub-123' AND key = 'status'"
    )
    return str(rows[0]["value_utf8"]).strip('"') if rows else None


def test_rpc_message_and_delayed_send_arrive(make_suite: SuiteFactory) -> None:
    suite = make_suite(
        "building-blocks",
        env={"BUILDING_BLOCKS_SLEEP_SECONDS": "0", "BUILDING_BLOCKS_CANCEL_DELAY_SECONDS": "2"},
    )
    invocation = suite.ingress.post("/MyService/run/send").json()["invocationId"]
    resolve_awakeable(suite, suite["building-blocks"], invocation, "hello")
    result = suite.ingress.get(f"/restate/invocation/{invocation}/attach")
    assert result.json()["rpcResult"] == "SUCCESS"
    assert object_status(suite) == "created"  # the call and the one-way message arrived
    wait_until(lambda: object_status(suite) == "cancelled", 30, "the delayed cancel to arrive")


def test_durable_sleep_survives_a_service_restart(make_suite: SuiteFactory) -> None:
    sleep = 4.0
    suite = make_suite("building-blocks", env={"BUILDING_BLOCKS_SLEEP_SECONDS": str(sleep)})
    service = suite["building-blocks"]
    invocation = suite.ingress.post("/MyService/run/send").json()["invocationId"]
    resolve_awakeable(suite, service, invocation, "hello")
    resolved_at = time.monotonic()

    def sleeping() -> bool:  # the durable sleep is in the journal: its timer is Restate's
        rows = suite.server.query(f"SELECT entry_type FROM sys_journal WHERE id = '{invocation}'")
        return any(row["entry_type"] == "Command: Sleep" for row in rows)

    wait_until(sleeping, 30, "the invocation in its durable sleep")
    service.process.kill()  # SIGKILL: the timer lives in Restate, not in this process
    service.start()

    result = suite.ingress.get(f"/restate/invocation/{invocation}/attach")
    assert result.status_code == 200, result.text
    assert time.monotonic() - resolved_at >= sleep, "the sleep was cut short by the restart"
    steps = [step for inv, step, _ in service.executions() if inv == invocation]
    assert steps == ["announce_awakeable", "charge_bank_account"], "a step ran twice"
