"""Runs one example service under hypercorn (or granian), configured the way Restate needs it.

    python -m examples_runtime subscriptions.service:app

Restate keeps long-lived HTTP/2 (cleartext) connections open and multiplexes every invocation
on them, so hypercorn's defaults (100 streams a connection, 5 s keep-alive, 1000 requests a
connection) are lifted. SIGTERM makes /readyz answer 503, stops accepting connections, and
gives in-flight requests `SHUTDOWN_GRACE_SECONDS` before the process exits; Restate retries
whatever did not finish, on another process.

`SERVER=granian` runs granian's embedded server (Rust) on the event loop of each worker process
instead, with the same behaviour (see `_serve_granian`); `EVENT_LOOP=uvloop` runs either on
uvloop.

One adaptation of hypercorn 0.18 itself, `_TolerantH2Protocol`, keeps a draining process from
crashing when Restate still sends data on streams hypercorn has already let go of.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


def _load_app(app_path: str) -> Any:
    module_name, _, attribute = app_path.partition(":")
    return getattr(importlib.import_module(module_name), attribute or "app")


def _on_shutdown_signal(stop: Callable[[], None]) -> None:
    """Calls `stop` once on SIGTERM or SIGINT, after /readyz has turned to 503."""
    stopping = False

    def on_signal() -> None:
        nonlocal stopping
        if not stopping:
            logger.info("shutting down: finishing in-flight requests")
            stopping = True
            lifecycle.draining.set()
            stop()

    # The Restate SDK hooks SIGTERM too (to tell in-flight invocations to wrap up); its hook
    # registry keeps one dispatcher per signal, so both run instead of one replacing the other.
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        install_shutdown_hook(loop, on_signal, signum)


async def _serve_in_this_process(config: Config) -> None:
    app = _load_app(config.application_path)
    stop = asyncio.Event()
    _on_shutdown_signal(stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)
    logger.info("stopped")


# After the last in-flight request has returned, how long granian gets to write what it sent
# before the process ends (its Rust side writes the response after the app's last `send`).
GRANIAN_LINGER_SECONDS = 0.25


async def _serve_granian(settings: Settings, app_path: str) -> None:
    """granian's embedded server: `PORT` (h2c for Restate and HTTP/1.1 for probes: `http=auto`)
    and `METRICS_PORT` (a second embedded server without the lifespan) on this event loop.

    On SIGTERM each server stops accepting and closes its connections gracefully (HTTP/2
    GOAWAY; granian waits for the client's answer to a PING, which Restate gives). granian's
    embedded `serve()` returns at once, while its Rust side still carries the connections:
    the requests in flight are counted here, and the process waits for them (on this loop,
    which runs their handlers) for at most `SHUTDOWN_GRACE_SECONDS` from the signal.
    """
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP2Settings
    from granian.server.embed import Server

    app = _load_app(app_path)
    h2 = HTTP2Settings(max_concurrent_streams=UNLIMITED)
    in_flight = 0
    idle = asyncio.Event()
    idle.set()

    def on_port(port: int) -> Any:
        # granian's scope["server"] is not always the listening socket's port; the app tells
        # PORT and METRICS_PORT apart by it, so each server states its own.
        async def app_on_port(scope: dict[str, Any], receive: Any, send: Any) -> None:
            nonlocal in_flight
            scope["server"] = (settings.host, port)
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            in_flight += 1
            idle.clear()
            try:
                await app(scope, receive, send)
            finally:
                in_flight -= 1
                if not in_flight:
                    idle.set()

        return app_on_port

    def server(port: int, interface: Interfaces) -> Server:
        s = Server(
            on_port(port),
            address=settings.host,
            port=port,
            interface=interface,
            http=HTTPModes.auto,
            http2_settings=h2,
            log_enabled=False,  # our own structured logs; granian's go to `granian` loggers
            backlog=1024,
        )
        s.workers_kill_timeout = max(1, round(settings.shutdown_grace_seconds))
        return s

    servers = [server(settings.port, Interfaces.ASGI)]
    if settings.metrics_port:  # the app tells the two apart by the port a request came in on
        servers.append(server(settings.metrics_port, Interfaces.ASGINL))
    deadline = 0.0
    loop = asyncio.get_running_loop()

    def stop() -> None:
        nonlocal deadline
        deadline = loop.time() + settings.shutdown_grace_seconds
        for s in servers:
            s.stop()  # type: ignore[no-untyped-call]

    _on_shutdown_signal(stop)
    with contextlib.suppress(TimeoutError):  # a worker outlived the grace period
        await asyncio.gather(*(s.serve() for s in servers))
    try:
        await asyncio.wait_for(idle.wait(), max(0.0, deadline - loop.time()))
        await asyncio.sleep(min(GRANIAN_LINGER_SECONDS, max(0.0, deadline - loop.time())))
    except TimeoutError:
        logger.warning("%d requests still in flight after the grace period: cut", in_flight)
    logger.info("stopped")


def _run(coroutine: Any, event_loop: str) -> None:
    if event_loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(coroutine)
    else:
        asyncio.run(coroutine)


def _granian_workers(settings: Settings, app_path: str) -> int:
    """WORKERS > 1 with granian: that many processes of this module, each with its embedded
    server bound to the same ports (granian binds with SO_REUSEPORT on Linux; the kernel
    spreads the connections). Their metrics are shared through files, as with hypercorn's
    workers. SIGTERM and SIGINT are passed on; the exit code is 0 when every worker's is. A
    worker that exits on its own ends the others and the process (its orchestrator restarts
    it) with that worker's code."""
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    with tempfile.TemporaryDirectory(prefix="metrics-") as metrics_dir:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir, "WORKERS": "1"}
        command = [sys.executable, "-m", "examples_runtime", app_path]
        workers = [subprocess.Popen(command, env=env) for _ in range(settings.workers)]
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, forward)
        while not stopping:
            exited = [w.returncode for w in workers if w.poll() is not None]
            if exited:
                logger.error("a worker exited (code %s): stopping the others", exited[0])
                forward(signal.SIGTERM, None)
                for worker in workers:
                    worker.wait()
                return exited[0] or 1
            time.sleep(0.1)
        codes = [worker.wait() for worker in workers]
    return next((code for code in codes if code != 0), 0)


def _exit_now(code: int = 0) -> None:
    """Ends the process without running the interpreter's finalization once granian has
    stopped: granian 2.8 sometimes aborts there (SIGABRT, a Rust panic while its runtime is
    torn down; granian issue 693). Everything is already closed and the logs are flushed."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples_runtime", description=__doc__)
    parser.add_argument("app", help="the service's ASGI app, as module:attribute")
    args = parser.parse_args(argv)
    settings = get_settings()  # exits with a clear message if a setting is invalid
    if settings.server == "granian" and settings.workers > 1:
        raise SystemExit(_granian_workers(settings, args.app))
    if settings.server == "granian":
        _run(_serve_granian(settings, args.app), settings.event_loop)
        _exit_now()
    config = hypercorn_config(settings, args.app)
    _use_tolerant_h2_protocol()
    if settings.workers == 1:
        _run(_serve_in_this_process(config), settings.event_loop)
    else:
        # hypercorn's supervisor owns the signals. The workers' metrics are shared through
        # files (prometheus-client's multiprocess mode), so any worker's /metrics shows all.
        # The workers are spawned processes: `run` starts this worker function in each of them.
        hypercorn.asyncio.run.asyncio_worker = _asyncio_worker
        with tempfile.TemporaryDirectory(prefix="metrics-") as metrics_dir:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            code = run(config)
        raise SystemExit(code)
