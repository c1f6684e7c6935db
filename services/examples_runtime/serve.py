"""Runs one example service under hypercorn, configured the way Restate needs it.

    python -m examples_runtime subscriptions.service:app

Restate keeps long-lived HTTP/2 (cleartext) connections open and multiplexes every invocation
on them, so hypercorn's defaults (100 streams a connection, 5 s keep-alive, 1000 requests a
connection) are lifted. SIGTERM makes /readyz answer 503, stops accepting connections, and
gives in-flight requests `SHUTDOWN_GRACE_SECONDS` before the process exits; Restate retries
whatever did not finish, on another process.

One adaptation of hypercorn 0.18 itself, `_TolerantH2Protocol`, keeps a draining process from
crashing when Restate still sends data on streams hypercorn has already let go of.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import tempfile
from typing import Any

import h2.events
import hypercorn.asyncio.run
import hypercorn.protocol
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.run import run
from restate.server import install_shutdown_hook

from examples_runtime import lifecycle
from examples_runtime.settings import Settings, get_settings

UNLIMITED = 2**31 - 1
logger = logging.getLogger("examples_runtime.serve")


class _TolerantH2Protocol(H2Protocol):
    """hypercorn's HTTP/2 protocol, dropping request data for streams it no longer tracks.

    hypercorn forgets a stream when it refuses it (a new request after SIGTERM: it answers
    RST_STREAM) or when the response is complete (the SDK ends its response at SIGTERM without
    waiting for Restate's end of input). Restate may have sent DATA for that stream already: in
    the same read as the refused request, or in flight. hypercorn looks the stream up without
    a guard and the `KeyError` ends the connection's task, which `serve()` re-raises from its
    graceful wait: exit code 1 within a second, without the grace period, and every other
    in-flight request on the connection cut. Under load, on every rollout. The data of such a
    stream has no reader, so it is dropped; its flow-control credit is given back, as for data
    that is read. (hypercorn issue 329, open fixes in pull requests 312, 334 and 365.)
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


def _use_tolerant_h2_protocol() -> None:
    # hypercorn's ProtocolWrapper creates the HTTP/2 protocol by this module-level name.
    hypercorn.protocol.H2Protocol = _TolerantH2Protocol  # type: ignore[attr-defined]


def _asyncio_worker(config: Config, *args: Any, **kwargs: Any) -> None:
    """hypercorn's worker, in a process of its own (WORKERS > 1), with the same adaptation."""
    _use_tolerant_h2_protocol()
    _hypercorn_asyncio_worker(config, *args, **kwargs)


_hypercorn_asyncio_worker = hypercorn.asyncio.run.asyncio_worker


def hypercorn_config(settings: Settings, app_path: str) -> Config:
    config = Config()
    config.application_path = app_path
    config.bind = [f"{settings.host}:{settings.port}"]
    if settings.metrics_port:  # the app tells the two apart by the port a request came in on
        config.bind.append(f"{settings.host}:{settings.metrics_port}")
    config.workers = settings.workers
    config.h2_max_concurrent_streams = UNLIMITED
    config.keep_alive_timeout = UNLIMITED
    config.keep_alive_max_requests = UNLIMITED
    config.graceful_timeout = settings.shutdown_grace_seconds
    config.accesslog = None  # handler metrics and logs say more
    config.errorlog = logging.getLogger("hypercorn.error")  # our structured log format
    return config


async def _serve_in_this_process(config: Config) -> None:
    module_name, _, attribute = config.application_path.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app")
    stop = asyncio.Event()

    def on_signal() -> None:
        if not stop.is_set():
            logger.info("shutting down: finishing in-flight requests")
        lifecycle.draining.set()
        stop.set()

    # The Restate SDK hooks SIGTERM too (to tell in-flight invocations to wrap up); its hook
    # registry keeps one dispatcher per signal, so both run instead of one replacing the other.
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        install_shutdown_hook(loop, on_signal, signum)
    await serve(app, config, shutdown_trigger=stop.wait)
    logger.info("stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples_runtime", description=__doc__)
    parser.add_argument("app", help="the service's ASGI app, as module:attribute")
    args = parser.parse_args(argv)
    settings = get_settings()  # exits with a clear message if a setting is invalid
    config = hypercorn_config(settings, args.app)
    _use_tolerant_h2_protocol()
    if settings.workers == 1:
        asyncio.run(_serve_in_this_process(config))
    else:
        # hypercorn's supervisor owns the signals. The workers' metrics are shared through
        # files (prometheus-client's multiprocess mode), so any worker's /metrics shows all.
        # The workers are spawned processes: `run` starts this worker function in each of them.
        hypercorn.asyncio.run.asyncio_worker = _asyncio_worker
        with tempfile.TemporaryDirectory(prefix="metrics-") as metrics_dir:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            code = run(config)
        raise SystemExit(code)
