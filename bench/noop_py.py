"""The Python no-op service: the Restate SDK alone, without the examples' runtime.

Served like the examples (`python -m examples_runtime bench.noop_py:app`, same hypercorn
configuration), it answers GET /readyz itself and passes everything else to the SDK.
"""

from __future__ import annotations

import restate
from restate.server_types import Receive, Scope, Send

service = restate.Service("Noop")


@service.handler()
async def noop(ctx: restate.Context) -> None:
    return None


_restate_app = restate.app([service])


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http" and scope.get("path") == "/readyz":
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": False})
        await send({"type": "http.response.body", "body": b"ready", "more_body": False})
        return
    await _restate_app(scope, receive, send)
