"""Example 0, durable execution: the code runs to the end, whatever fails on the way.

Restate journals the result of every step. When the process fails (an exception, a crash, a
restart), Restate invokes the handler again and replays the journal: completed steps return
their recorded result and are not executed again, and the code continues where it stopped.

    curl localhost:8080/SubscriptionService/add -H 'content-type: application/json' -d \\
      '{"userId": "Sam Beckett", "creditCard": "1234-5678-9012-3456",
        "subscriptions": ["Netflix", "Disney+", "HBO Max"]}'
"""

import restate
from pydantic import BaseModel, ConfigDict, Field

from examples_runtime.app import create_app
from subscriptions.stubs import create_recurring_payment, create_subscription


class SubscriptionRequest(BaseModel):
    # camelCase as in the original; the snake_case of the Python port is accepted too.
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    user_id: str = Field(alias="userId")
    credit_card: str = Field(alias="creditCard")
    subscriptions: list[str]


subscription_service = restate.Service("SubscriptionService")


@subscription_service.handler()
async def add(ctx: restate.Context, req: SubscriptionRequest) -> None:
    # A payment id that stays the same across retries: ctx.uuid() is recorded in the journal.
    payment_id = str(ctx.uuid())

    # ctx.run executes the step once and journals its result. If it raises, Restate retries
    # it (with backoff) until it succeeds; after that, a retry of the handler only replays it.
    payment_ref = await ctx.run_typed(
        "create recurring payment", create_recurring_payment,
        credit_card=req.credit_card, payment_id=payment_id,
    )  # fmt: skip

    for subscription in req.subscriptions:
        await ctx.run_typed(
            f"create subscription {subscription}", create_subscription,
            user_id=req.user_id, subscription=subscription, payment_ref=payment_ref,
        )  # fmt: skip


app = create_app([subscription_service])
