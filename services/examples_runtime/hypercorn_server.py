"""hypercorn (pure Python, h2), configured for Restate: `SERVER=hypercorn`.

Restate keeps long-lived HTTP/2 (cleartext) connections open and multiplexes every invocation
on them, so hypercorn's defaults (100 streams a connection, 5 s keep-alive, 1000 requests a
connection) are lifted. `PORT` and `METRICS_PORT` are served by the same server; the app tells
them apart by the port in `scope["server"]`.

One adaptation of hypercorn 0.18 itself, `_TolerantH2Protocol`, keeps a stopping process from
crashing when Restate still sends data on streams hypercorn has already let go of.
"""

from __future__ import annotations

import logging
import socket

import h2.events
import hypercorn.protocol
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.protocol.h2 import H2Protocol

from examples_runtime.settings import Settings
from examples_runtime.shutdown import SERVER_STOP_SECONDS, ASGIApp, Drain

UNLIMITED = 2**31 - 1


class _TolerantH2Protocol(H2Protocol):
    """hypercorn's HTTP/2 protocol, dropping request data for streams it no longer tracks.

    hypercorn forgets a stream when it refuses it (a new request once it is stopping: it
    answers RST_STREAM) or when the response is complete (a refused invocation's 503, or the
    SDK ending its response at SIGTERM without waiting for Restate's end of input). Restate may
    have sent DATA for that stream already. hypercorn looks the stream up without a guard and
    the `KeyError` ends the connection's task, which `serve()` re-raises from its graceful
    wait: exit code 1, and every other request on the connection cut. The data of such a stream
    has no reader, so it is dropped; its flow-control credit is given back, as for data that
    is read. (hypercorn issue 329, open fixes in pull requests 312, 334 and 365.)
    """

    async def _handle_events(self, events: list[h2.events.Event]) -> None:
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
                self.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            else:
                # One at a time: an earlier event of the batch may create or forget a stream.
                await super()._handle_events([event])
        await self._flush()


def _listener(host: str, port: int) -> socket.socket:
    """A listening socket shared with the other worker processes (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def hypercorn_config(settings: Settings, *, reuse_port: bool) -> Config:
    config = Config()
    ports = [settings.port] + ([settings.metrics_port] if settings.metrics_port else [])
    if reuse_port:  # hypercorn takes the descriptors over (and closes them)
        config.bind = [f"fd://{_listener(settings.host, port).detach()}" for port in ports]
    else:
        config.bind = [f"{settings.host}:{port}" for port in ports]
    config.h2_max_concurrent_streams = UNLIMITED
    config.keep_alive_timeout = UNLIMITED
    config.keep_alive_max_requests = UNLIMITED
    config.graceful_timeout = SERVER_STOP_SECONDS  # after the drain (shutdown.py)
    config.accesslog = None  # handler metrics and logs say more
    config.errorlog = logging.getLogger("hypercorn.error")  # our structured log format
    return config


async def serve_hypercorn(settings: Settings, app: ASGIApp, drain: Drain, reuse_port: bool) -> None:
    """Serves until SIGTERM and the drain; hypercorn then refuses new streams, sends GOAWAY
    and closes its connections."""
    # hypercorn's ProtocolWrapper creates the HTTP/2 protocol by this module-level name.
    hypercorn.protocol.H2Protocol = _TolerantH2Protocol  # type: ignore[attr-defined]
    config = hypercorn_config(settings, reuse_port=reuse_port)
    drain.on_signals()
    await serve(drain.wrap(app), config, shutdown_trigger=drain.wait)
