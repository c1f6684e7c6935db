"""Example 2, virtual objects: stateful entities with a key, one handler at a time per key.

Each `GreeterObject/<key>` has its own durable state (`count`), stored by Restate. Restate runs
the exclusive handlers of one key one after the other, so there are no lost updates and no
locks: two hundred concurrent greetings to `mary` get the counts 1 to 200. Different keys run
in parallel.

    curl localhost:8080/GreeterObject/mary/greet -H 'content-type: application/json' -d '"Hi"'
    curl localhost:8080/GreeterObject/barack/greet -H 'content-type: application/json' -d '"Hello"'
    curl -X POST localhost:8080/GreeterObject/mary/ungreet
"""

import restate

from examples_runtime.app import create_app

greeter_object = restate.VirtualObject("GreeterObject")


@greeter_object.handler()
async def greet(ctx: restate.ObjectContext, greeting: str) -> str:
    # State is loaded with the invocation and written back with its journal: durable, and
    # consistent with the handler's progress.
    count = (await ctx.get("count", type_hint=int) or 0) + 1
    ctx.set("count", count)
    return f"{greeting} {ctx.key()} for the {count}-th time."


@greeter_object.handler()
async def ungreet(ctx: restate.ObjectContext) -> str:
    count = await ctx.get("count", type_hint=int) or 0
    if count > 0:
        count -= 1
    ctx.set("count", count)
    return f"Dear {ctx.key()}, taking one greeting back: {count}."


app = create_app([greeter_object])
