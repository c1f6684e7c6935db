"""granian (Rust, embedded in this process's event loop), configured for Restate:
`SERVER=granian`.

`PORT` carries h2c for Restate and HTTP/1.1 for probes (`http=auto`); `METRICS_PORT` is a
second embedded server (ASGI without the lifespan). Each states its port in `scope["server"]`
(granian's is not always the listening socket's), by which the app tells them apart. granian
binds with SO_REUSEPORT on Linux, so worker processes share the ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP2Settings
from granian.server.embed import Server

from examples_runtime.settings import Settings
from examples_runtime.shutdown import SERVER_STOP_SECONDS, ASGIApp, Drain

UNLIMITED = 2**31 - 1


def _on_port(app: ASGIApp, host: str, port: int) -> ASGIApp:
    async def app_on_port(scope: dict[str, object], receive: object, send: object) -> None:
        scope["server"] = (host, port)
        await app(scope, receive, send)

    return app_on_port


def _server(settings: Settings, app: ASGIApp, port: int, interface: Interfaces) -> Server:
    server = Server(
        _on_port(app, settings.host, port),
        address=settings.host,
        port=port,
        interface=interface,
        http=HTTPModes.auto,
        http2_settings=HTTP2Settings(max_concurrent_streams=UNLIMITED),
        log_enabled=False,  # our own structured logs; granian's go to `granian` loggers
        backlog=1024,
    )
    server.workers_kill_timeout = max(1, round(SERVER_STOP_SECONDS))
    return server


async def serve_granian(settings: Settings, app: ASGIApp, drain: Drain) -> None:
    """Serves until SIGTERM and the drain, then stops granian (GOAWAY, close) and waits for
    it to have closed its connections."""
    app = drain.wrap(app)
    servers = [_server(settings, app, settings.port, Interfaces.ASGI)]
    if settings.metrics_port:
        servers.append(_server(settings, app, settings.metrics_port, Interfaces.ASGINL))
    drain.on_signals()
    serving: asyncio.Future[list[None]] = asyncio.gather(*(s.serve() for s in servers))
    stopping = asyncio.ensure_future(drain.wait())
    await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
    if not stopping.done():  # a server ended on its own
        stopping.cancel()
        await serving
        return
    for server in servers:
        server.stop()  # type: ignore[no-untyped-call]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(serving, SERVER_STOP_SECONDS + 1)


def exit_now(code: int = 0) -> None:
    """Ends the process without the interpreter's finalization once granian has stopped:
    granian 2.8 sometimes aborts there (SIGABRT, a Rust panic while its runtime is torn
    down; granian issue 693). Everything is already closed and the logs are flushed."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
