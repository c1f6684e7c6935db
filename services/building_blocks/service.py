"""Example 1, durable building blocks: a runnable catalogue of what Restate makes durable.

`MyService/run` walks through the blocks in order. It waits at block 4 until someone resolves
its awakeable: the log line (and GET /awakeables on this service) gives the id and the request.

    curl localhost:8080/MyService/run -H 'idempotency-key: my-first-run' -X POST
    curl localhost:9082/awakeables          # {"<invocation id>": "<awakeable id>"}
    curl localhost:8080/restate/awakeables/<awakeable id>/resolve \\
      -H 'content-type: application/json' -d '"hello"'
"""

from datetime import timedelta

import restate

from building_blocks.awakeables import awakeables_app
from building_blocks.stubs import PENDING_AWAKEABLES, announce_awakeable, charge_bank_account
from examples_runtime.app import create_app
from examples_runtime.settings import get_settings

# A small virtual object to call and message. (The original names it SubscriptionService;
# service names are global in a Restate server, and example 0 has that name.)
subscription_object = restate.VirtualObject("SubscriptionObject")


@subscription_object.handler()
async def create(ctx: restate.ObjectContext, request: str) -> str:
    ctx.set("status", "created")
    # How many creates and cancels reached this object: each call and each message counts
    # once, however often the caller's process died (Restate delivers exactly once).
    ctx.set("created", (await ctx.get("created", type_hint=int) or 0) + 1)
    return "SUCCESS"


@subscription_object.handler()
async def cancel(ctx: restate.ObjectContext) -> None:
    ctx.set("status", "cancelled")
    ctx.set("cancelled", (await ctx.get("cancelled", type_hint=int) or 0) + 1)


my_service = restate.Service("MyService")


@my_service.handler()
async def run(ctx: restate.Context) -> dict[str, object]:
    # 1. IDEMPOTENCY: a caller that sends an `idempotency-key` header gets the same invocation
    #    (and result) for every retry of its request; Restate deduplicates, no code needed.

    # 2. DURABLE RPC: call another service; Restate delivers the call exactly once and
    #    journals the answer, so no retry or deduplication logic is needed here.
    rpc_result = await ctx.object_call(create, key="my-sub-123", arg="my-request")

    # 3. DURABLE MESSAGING: a one-way message, delivered even if this process dies right now.
    ctx.object_send(create, key="my-sub-123", arg="my-request")

    # 4. DURABLE PROMISES: an awakeable is a promise Restate keeps; anyone with its id can
    #    resolve it, and the invocation suspends (no process waits) until then.
    awakeable_id, greeting_promise = ctx.awakeable(type_hint=str)
    await ctx.run_typed(
        "announce awakeable", announce_awakeable,
        invocation_id=ctx.request().id, awakeable_id=awakeable_id,
    )  # fmt: skip
    greeting = await greeting_promise
    PENDING_AWAKEABLES.pop(ctx.request().id, None)

    # 5. DURABLE TIMERS: a sleep that survives crashes and restarts (the timer is in Restate),
    #    and a message scheduled for later. (The original sleeps 5 s and cancels after a day;
    #    both are settings here, so that the tests run in seconds.)
    settings = get_settings()
    await ctx.sleep(timedelta(seconds=settings.building_blocks_sleep_seconds))
    ctx.object_send(
        cancel, key="my-sub-123", arg=None,
        send_delay=timedelta(seconds=settings.building_blocks_cancel_delay_seconds),
    )  # fmt: skip

    # 7. PERSISTED RESULTS: a deduplication id from the journaled UUID, then a durable step;
    #    on a retry the bank is not charged twice, and the id is the same anyway.
    payment_deduplication_id = str(ctx.uuid())
    charged = await ctx.run_typed(
        "charge bank account", charge_bank_account,
        payment_deduplication_id=payment_deduplication_id, amount=100,
    )  # fmt: skip

    return {"rpcResult": rpc_result, "greeting": greeting, "charged": charged}


# Restate's endpoint, and the outside view of block 4 (awakeables.py) on the same port.
app = create_app([my_service, subscription_object], awakeables_app)
