"""Graceful shutdown, the same whatever the server: drain first, stop the server after.

On SIGTERM (or SIGINT):

1. `/readyz` answers 503 (`lifecycle.draining`), so no new traffic is routed here.
2. New Restate invocations are refused with 503: Restate retries them, on another process once
   this one has gone. Everything else (probes, `/metrics`, discovery) is still answered.
3. The invocations already running keep their HTTP/2 streams and run to the end, on this
   process, until none is left or `SHUTDOWN_GRACE_SECONDS` have passed since the signal.
4. Only then is the server told to stop (HTTP/2 GOAWAY, close the connections).

The order matters: a GOAWAY sent while an invocation's stream is still open ends that
invocation here (Restate retries it on the next process), which is what granian's own graceful
stop did at the signal (bench/findings.md). Draining first keeps it, whichever server runs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from restate.server import install_shutdown_hook, parse_path
from restate.server_types import HTTPResponseStartEvent, Receive, Scope, Send

from examples_runtime import lifecycle

logger = logging.getLogger("examples_runtime.shutdown")

# After the drain, how long the server gets to close its connections (nothing is in flight by
# then, unless the grace period ran out).
SERVER_STOP_SECONDS = 1.0

ASGIApp = Any  # (scope, receive, send) -> Awaitable[None]


class Drain:
    """Counts the requests in flight and, once SIGTERM has come, waits for them to end."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._signalled = asyncio.Event()
        self._deadline = 0.0

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """`app`, with its HTTP requests counted and, while draining, new invocations refused."""

        async def drained_app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            if self._signalled.is_set() and parse_path(scope["path"])["type"] == "invocation":
                await _refuse_while_draining(send)
                return
            self.in_flight += 1
            self._idle.clear()
            try:
                await app(scope, receive, send)
            finally:
                self.in_flight -= 1
                if not self.in_flight:
                    self._idle.set()

        return drained_app

    def on_signals(self) -> None:
        """Starts the drain on SIGTERM or SIGINT (on the running loop)."""
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if not self._signalled.is_set():
                logger.info("shutting down: finishing in-flight requests")
                lifecycle.draining.set()
                self._deadline = loop.time() + self.grace_seconds
                self._signalled.set()

        # The Restate SDK hooks SIGTERM too (to tell in-flight invocations to wrap up); its
        # hook registry keeps one dispatcher per signal, so both run.
        for signum in (signal.SIGTERM, signal.SIGINT):
            install_shutdown_hook(loop, on_signal, signum)

    async def wait(self) -> None:
        """Returns once a signal has come and the requests in flight have ended, or the grace
        period has passed: then the server may stop."""
        await self._signalled.wait()
        remaining = self._deadline - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(self._idle.wait(), max(0.0, remaining))
        except TimeoutError:
            logger.warning("%d requests still in flight after the grace period", self.in_flight)


async def _refuse_while_draining(send: Send) -> None:
    headers = [(b"content-type", b"text/plain"), (b"retry-after", b"1")]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 503,
        "headers": headers,
        "trailers": False,
    }
    await send(start)
    await send({"type": "http.response.body", "body": b"draining", "more_body": False})
