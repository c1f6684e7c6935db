"""What the example services tell their users, read back from their logs."""

from __future__ import annotations

import re

from testkit.processes import wait_until
from testkit.restate import Suite


def email_secret(suite: Suite, user_id: str) -> str:
    """The secret in the verification email the stub 'sent' (its log line)."""
    pattern = re.compile(rf"/verify/{re.escape(user_id)}\?secret=([0-9a-f-]+)")
    found: list[str] = []

    def sent() -> bool:
        found[:] = [
            m.group(1)
            for r in suite["signup-workflow"].records()
            if (m := pattern.search(r["message"]))
        ]
        return bool(found)

    wait_until(sent, 30, f"the verification email to {user_id}")
    return found[0]
