"""Pretend external systems of the building-blocks catalogue."""

import logging

from examples_runtime.settings import get_settings
from examples_runtime.stubs import stub

logger = logging.getLogger("examples.stubs")

# Awakeables announced by this process and not yet known to be resolved, served on
# GET /awakeables so a user (or a test) can find the id without reading logs.
PENDING_AWAKEABLES: dict[str, str] = {}


@stub()
def announce_awakeable(invocation_id: str, awakeable_id: str) -> None:
    """Tells the outside world how to wake the invocation up (a real system would email it,
    or put it in a queue)."""
    PENDING_AWAKEABLES[invocation_id] = awakeable_id
    logger.info(
        "waiting on awakeable %s; resolve it with: curl %s/restate/awakeables/%s/resolve "
        "-H 'content-type: application/json' -d '\"hello\"'",
        awakeable_id, get_settings().restate_ingress_url, awakeable_id,
    )  # fmt: skip


@stub()
def charge_bank_account(payment_deduplication_id: str, amount: int) -> bool:
    """Charges the account; the deduplication id lets the bank ignore a repeated request."""
    return True
