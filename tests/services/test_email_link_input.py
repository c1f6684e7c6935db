"""The email link (GET /verify/<user>?secret=) answers any user id and secret without a 5xx.

Found by fuzzing (reliability/fuzz.py): a secret outside ASCII was put as is in an HTTP
header (500), a user id with "?" or "#" cut Restate's URL short and a second click with
another secret was refused by Restate with 409; both came back as 502, as if Restate were
down.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from testkit.restate import Suite


@pytest.mark.parametrize(
    ("user_id", "secret"),
    [
        ("josé", "clé-é-ü"),  # not ASCII
        ("a?b#c d", "s/e?c#r%et"),  # URL syntax in both
        ("team/ann", "x"),  # a "/" in the key (Restate keys may hold one)
    ],
)
def test_verify_link_for_any_user_and_secret(suite: Suite, user_id: str, secret: str) -> None:
    link = f"{suite['signup-workflow'].url}/verify/{quote(user_id, safe='')}"
    first = httpx.get(link, params={"secret": secret}, timeout=60)
    assert (first.status_code, first.json()) == (200, {"userId": user_id, "clicked": True})

    # It resolved the promise of exactly this key: clicking there again finds it completed.
    again = suite.ingress.post(f"/SignupWorkflow/{quote(user_id, safe='')}/click", json=secret)
    assert again.status_code == 409, again.text

    # A second link click with another secret is the user's mistake: a 4xx saying so.
    other = httpx.get(link, params={"secret": secret + "-other"}, timeout=60)
    assert other.status_code == 409, other.text
    assert "already completed" in other.json()["error"]
