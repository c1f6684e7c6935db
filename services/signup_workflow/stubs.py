"""Pretend user database and mail server."""

import logging
from urllib.parse import quote

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
    in_url = quote(user_id, safe="")  # any user id is one path segment of both URLs
    logger.info(
        "email to %s: open %s/verify/%s?secret=%s or run: curl %s/SignupWorkflow/%s/click "
        "-H 'content-type: application/json' -d '\"%s\"'",
        email, settings.link_base_url, in_url, secret,
        settings.restate_ingress_url, in_url, secret,
    )  # fmt: skip
