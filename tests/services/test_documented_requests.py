"""1. Every request of the original examples' README gives the documented answer."""

from __future__ import annotations

import httpx

from testkit.examples import email_secret
from testkit.processes import wait_until
from testkit.restate import Suite

JSON = {"content-type": "application/json"}


def test_greeter_object_requests(suite: Suite) -> None:
    greet = suite.ingress.post("/GreeterObject/mary/greet", headers=JSON, content='"Hi"')
    assert (greet.status_code, greet.json()) == (200, "Hi mary for the 1-th time.")
    greet = suite.ingress.post("/GreeterObject/barack/greet", headers=JSON, content='"Hello"')
    assert (greet.status_code, greet.json()) == (200, "Hello barack for the 1-th time.")
    ungreet = suite.ingress.post("/GreeterObject/mary/ungreet")
    assert (ungreet.status_code, ungreet.json()) == (
        200,
        "Dear mary, taking one greeting back: 0.",
    )


def test_subscription_add_camel_case(suite: Suite) -> None:
    answer = suite.ingress.post(
        "/SubscriptionService/add",
        headers=JSON,
        content='{"userId": "Sam Beckett", "creditCard": "1234-5678-9012-3456",'
        ' "subscriptions": ["Netflix", "Disney+", "HBO Max"]}',
    )
    assert (answer.status_code, answer.content) == (200, b""), answer.text  # null: empty body
    invocation = answer.headers["x-restate-id"]
    steps = [step for inv, step, _ in suite["subscriptions"].executions() if inv == invocation]
    assert sorted(steps) == ["create_recurring_payment"] + ["create_subscription"] * 3


def test_subscription_add_snake_case_of_the_python_port(suite: Suite) -> None:
    answer = suite.ingress.post(
        "/SubscriptionService/add",
        json={"user_id": "Al", "credit_card": "4321", "subscriptions": ["Netflix"]},
    )
    assert (answer.status_code, answer.content) == (200, b""), answer.text
    invocation = answer.headers["x-restate-id"]
    calls = [args for inv, step, args in suite["subscriptions"].executions() if inv == invocation]
    assert ("Al", "Netflix") in [args[:2] for args in calls]


def test_signup_workflow_requests(suite: Suite) -> None:
    send = suite.ingress.post(
        "/SignupWorkflow/userid1/run/send",
        headers=JSON,
        content='{ "name": "Bob", "email": "bob@builder.com" }',
    )
    assert send.status_code == 202 and send.json()["status"] == "Accepted", send.text
    secret = email_secret(suite, "userid1")
    click = suite.ingress.post("/SignupWorkflow/userid1/click", headers=JSON, json=secret)
    assert click.status_code == 200, click.text
    attach = suite.ingress.get("/restate/workflow/SignupWorkflow/userid1/attach")
    assert (attach.status_code, attach.json()) == (200, True)


def test_building_blocks_run_end_to_end(suite: Suite) -> None:
    send = suite.ingress.post("/MyService/run/send", headers={"idempotency-key": "readme-run"})
    assert send.status_code == 202, send.text
    invocation = send.json()["invocationId"]
    service = suite["building-blocks"]

    # The service says which awakeable it waits on: GET /awakeables, and the log line.
    def announced() -> bool:
        return invocation in httpx.get(f"{service.url}/awakeables").json()

    wait_until(announced, 30, "the awakeable to be announced")
    awakeable = httpx.get(f"{service.url}/awakeables").json()[invocation]
    log = next(r for r in service.records() if awakeable in r["message"])
    assert f"/restate/awakeables/{awakeable}/resolve" in log["message"]

    resolve = suite.ingress.post(
        f"/restate/awakeables/{awakeable}/resolve", headers=JSON, content='"hello"'
    )
    assert resolve.status_code in (200, 202), resolve.text
    result = suite.ingress.get(f"/restate/invocation/{invocation}/attach")
    assert result.status_code == 200, result.text
    assert result.json() == {"rpcResult": "SUCCESS", "greeting": "hello", "charged": True}
