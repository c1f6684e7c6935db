"""A request to a service's Restate endpoint that does not come from Restate gets a 4xx that
says so, not an empty 500 and a traceback.

Found by fuzzing (reliability/fuzz.py): `POST /invoke/<service>/<handler>` with JSON, no content
type or an unknown protocol version made the SDK raise out of the ASGI app.
"""

from __future__ import annotations

import httpx
import pytest

from testkit.restate import Suite


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"content-type": "application/json"}, "not a restate protocol content type"),
        ({}, "Missing content type"),
        ({"content-type": "application/vnd.restate.invocation.v99"}, "unsupported protocol"),
    ],
)
def test_invoke_endpoint_refuses_what_restate_would_not_send(
    suite: Suite, headers: dict[str, str], problem: str
) -> None:
    service = suite["user-object"]
    errors_before = len([r for r in service.records() if r["level"] == "ERROR"])
    for path in ("/invoke/GreeterObject/greet", "/rev-1/invoke/GreeterObject/greet"):
        answer = httpx.post(f"{service.url}{path}", headers=headers, content=b'"Hi"')
        assert answer.status_code == 415, answer.text
        assert problem in answer.text
    errors = [r for r in service.records() if r["level"] == "ERROR"][errors_before:]
    assert errors == [], "a refused request is a warning, not an error with a traceback"
    # Restate's own requests still work.
    assert suite.ingress.post("/GreeterObject/not-restate/greet", json="Hi").status_code == 200


def test_unknown_paths_answer_404_naming_it(suite: Suite) -> None:
    service = suite["building-blocks"]
    for method, path in [("GET", "/nothing"), ("POST", "/verify/x"), ("GET", "/awakeables/x/y")]:
        answer = httpx.request(method, f"{service.url}{path}")
        assert answer.status_code == 404, answer.text
        assert answer.json() == {"detail": "Not Found"}  # was an empty body (the SDK's 404)
