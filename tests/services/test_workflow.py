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


def test_invalid_run_body_uses_the_key_until_the_run_is_purged(suite: Suite) -> None:
    # The 400 comes from the handler, so it is the outcome of the key's one `run`: Restate
    # refuses a corrected run for the workflow retention (1 day), unless the run is purged.
    bad = suite.ingress.post("/SignupWorkflow/typo-user/run", json={"name": "Ann"})
    assert bad.status_code == 400, bad.text
    message = bad.json()["message"]
    assert "email: Field required" in message and "restate invocations purge inv_" in message
    invocation = message.rsplit("purge ", 1)[1].rstrip(")")

    corrected = {"name": "Ann", "email": "ann@example.com"}
    again = suite.ingress.post("/SignupWorkflow/typo-user/run", json=corrected)
    assert again.status_code == 409, again.text
    resend = suite.ingress.post("/SignupWorkflow/typo-user/run/send", json=corrected)
    assert (resend.json()["status"], resend.json()["invocationId"]) == (
        "PreviouslyAccepted",
        invocation,
    )

    # The remedy the message names (what `restate invocations purge` calls).
    purge = suite.server.admin.patch(f"/invocations/{invocation}/purge")
    assert purge.status_code == 200, purge.text
    started = suite.ingress.post("/SignupWorkflow/typo-user/run/send", json=corrected)
    assert started.json()["status"] == "Accepted", started.text
    secret = email_secret(suite, "typo-user")
    suite.ingress.post("/SignupWorkflow/typo-user/click", json=secret)
    attach = suite.ingress.get("/restate/workflow/SignupWorkflow/typo-user/attach")
    assert (attach.status_code, attach.json()) == (200, True)
