"""Pretend payment and subscription systems. They fail now and then, like real ones do."""

import uuid

from examples_runtime.stubs import stub


@stub(failure_probability=0.5)
def create_recurring_payment(credit_card: str, payment_id: str) -> str:
    """Charges the card every month; the payment id makes the call idempotent at the provider."""
    return f"payment-ref-{uuid.uuid4()}"


@stub(failure_probability=0.3)
def create_subscription(user_id: str, subscription: str, payment_ref: str) -> str:
    """Creates one subscription at a streaming provider."""
    return "SUCCESS"
