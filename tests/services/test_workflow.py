"""5. Workflow: the secret decides, `run` runs once per key, attach and the email link work."""

from __future__ import annotations

import httpx

from testkit.examples import email_secret
from testkit.restate import Suite


def start_signup(suite: Suite, user_id: str) -> str:
    answer = suite.ingress.post(
        f"/SignupWorkflow/{user_id}/run/send", json={"name": "Ann", "email": "ann@example.com"}
    )
    assert answer.status_code == 202, answer.text
    return email_secret(suite, user_id)


def test_wrong_secret_gives_false(suite: Suite) -> None:
    secret = start_signup(suite, "wrong-secret-user")
    suite.ingress.post("/SignupWorkflow/wrong-secret-user/click", json=f"not-{secret}")
    attach = suite.ingress.get("/restate/workflow/SignupWorkflow/wrong-secret-user/attach")
    assert (attach.status_code, attach.json()) == (200, False)


def test_right_secret_gives_true_and_run_runs_once_per_key(suite: Suite) -> None:
    secret = start_signup(suite, "once-user")
    suite.ingress.post("/SignupWorkflow/once-user/click", json=secret)
    assert suite.ingress.get("/restate/workflow/SignupWorkflow/once-user/attach").json() is True

    again = suite.ingress.post(
        "/SignupWorkflow/once-user/run", json={"name": "Ann", "email": "ann@example.com"}
    )
    assert again.status_code == 409, again.text  # "the workflow method was already invoked"
    resend = suite.ingress.post(
        "/SignupWorkflow/once-user/run/send", json={"name": "Ann", "email": "ann@example.com"}
    )
    assert resend.json()["status"] == "PreviouslyAccepted"
    created = [
        args for _, step, args in suite["signup-workflow"].executions()
        if step == "send_email_with_link" and args[0] == "once-user"
    ]  # fmt: skip
    assert len(created) == 1, "the workflow ran again"
    output = suite.ingress.get("/restate/workflow/SignupWorkflow/once-user/output")
    assert output.json() is True


def test_email_link_get_resolves_the_promise(suite: Suite) -> None:
    secret = start_signup(suite, "link-user")
    service = suite["signup-workflow"]
    link = httpx.get(f"{service.url}/verify/link-user", params={"secret": secret}, timeout=60)
    assert (link.status_code, link.json()) == (200, {"userId": "link-user", "clicked": True})
    assert suite.ingress.get("/restate/workflow/SignupWorkflow/link-user/attach").json() is True

    missing = httpx.get(f"{service.url}/verify/link-user")
    assert missing.status_code == 400 and "secret" in missing.json()["error"]
