"""Pretend user database and mail server."""

import logging

from examples_runtime.settings import get_settings
from examples_runtime.stubs import stub

logger = logging.getLogger("examples.stubs")


@stub()
def create_user_entry(name: str, email: str) -> None:
    """Stores the user in a database."""


@stub()
def send_email_with_link(user_id: str, email: str, secret: str) -> None:
    """'Sends' the verification email: logs the link in it, and the request a click makes."""
    settings = get_settings()
    logger.info(
        "email to %s: open %s/verify/%s?secret=%s or run: curl %s/SignupWorkflow/%s/click "
        "-H 'content-type: application/json' -d '\"%s\"'",
        email, settings.link_base_url, user_id, secret,
        settings.restate_ingress_url, user_id, secret,
    )  # fmt: skip
