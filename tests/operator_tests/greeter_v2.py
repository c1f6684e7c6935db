"""GreeterObject with one more handler (`wave`): the "new code" of a rollout in the tests."""

import restate

from examples_runtime.app import create_app
from user_object.service import greeter_object

greeter_v2 = restate.VirtualObject("GreeterObject")
greeter_v2.handlers = dict(greeter_object.handlers)


@greeter_v2.handler()
async def wave(ctx: restate.ObjectContext) -> str:
    return f"{ctx.key()} waves"


app = create_app([greeter_v2])
