"""7. Bad input answers 400 naming the problem, is not retried, and runs no step."""

from __future__ import annotations

import re

import httpx
import pytest

from testkit.restate import ExampleService, Suite

JSON = {"content-type": "application/json"}


def invalid_input_attempts(service: ExampleService, handler: str) -> float:
    metrics = httpx.get(f"{service.url}/metrics").text
    pattern = (
        rf'restate_handler_failures_total{{handler="{handler}",kind="invalid_input",[^}}]*}} (\S+)'
    )
    match = re.search(pattern, metrics)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize(
    ("service", "path", "body", "problem"),
    [
        ("subscriptions", "/SubscriptionService/add", '{"userId": "x",', "Invalid JSON"),
        (
            "subscriptions",
            "/SubscriptionService/add",
            '{"userId": "x", "subscriptions": ["a"]}',
            "creditCard: Field required",
        ),
        (
            "subscriptions",
            "/SubscriptionService/add",
            '{"userId": "x", "creditCard": "1", "subscriptions": "Netflix"}',
            "subscriptions: Input should be a valid array",
        ),
        ("subscriptions", "/SubscriptionService/add", " ", "request body is empty"),
        ("user-object", "/GreeterObject/bad/greet", "42", "body: Input should be a valid string"),
        ("signup-workflow", "/SignupWorkflow/bad-user/run", '{"name": "Bob"}', "email: Field"),
        ("signup-workflow", "/SignupWorkflow/bad-user/click", "[1]", "valid string"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    suite: Suite, service: str, path: str, body: str, problem: str
) -> None:
    example = suite[service]
    handler = path.rsplit("/", 1)[1]
    executions = len(example.executions())
    attempts = invalid_input_attempts(example, handler)

    answer = suite.ingress.post(path, headers=JSON, content=body)

    assert answer.status_code == 400, answer.text
    assert problem in answer.json()["message"]
    assert len(example.executions()) == executions, "a step ran"
    # Exactly one attempt: the terminal error is not retried.
    assert invalid_input_attempts(example, handler) == attempts + 1
    status = suite.server.query(
        f"SELECT status FROM sys_invocation_status WHERE id = '{answer.headers['x-restate-id']}'"
    )
    assert status in ([], [{"status": "completed"}])


def test_good_input_after_bad_still_works(suite: Suite) -> None:
    bad = suite.ingress.post("/GreeterObject/recovering/greet", headers=JSON, content="{")
    assert bad.status_code == 400
    good = suite.ingress.post("/GreeterObject/recovering/greet", json="Hi")
    assert good.json() == "Hi recovering for the 1-th time."
