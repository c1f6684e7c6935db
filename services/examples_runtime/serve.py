"""Runs one example service, configured the way Restate needs it.

    python -m examples_runtime subscriptions.service:app

`SERVER` picks the HTTP server: granian (`granian_server.py`, the default) or hypercorn
(`hypercorn_server.py`); both carry Restate's h2c streams and HTTP/1.1 probes on one port.
`EVENT_LOOP` picks the asyncio loop (uvloop, the default, or the standard library's).
Whatever the server, SIGTERM drains first and stops the server after (`shutdown.py`);
`WORKERS > 1` runs that many processes of this module (`workers.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
from collections.abc import Coroutine
from typing import Any

from examples_runtime import workers
from examples_runtime.settings import Settings, get_settings
from examples_runtime.shutdown import Drain

logger = logging.getLogger("examples_runtime.serve")


def _load_app(app_path: str) -> Any:
    module_name, _, attribute = app_path.partition(":")
    return getattr(importlib.import_module(module_name), attribute or "app")


async def _serve(settings: Settings, app_path: str, reuse_port: bool) -> None:
    app = _load_app(app_path)
    drain = Drain(settings.shutdown_grace_seconds)
    if settings.server == "granian":
        from examples_runtime.granian_server import serve_granian

        await serve_granian(settings, app, drain)
    else:
        from examples_runtime.hypercorn_server import serve_hypercorn

        await serve_hypercorn(settings, app, drain, reuse_port)
    logger.info("stopped")


def _run(coroutine: Coroutine[Any, Any, None], event_loop: str) -> None:
    if event_loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(coroutine)
    else:
        asyncio.run(coroutine)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples_runtime", description=__doc__)
    parser.add_argument("app", help="the service's ASGI app, as module:attribute")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # workers.py
    args = parser.parse_args(argv)
    settings = get_settings()  # exits with a clear message if a setting is invalid
    if settings.workers > 1:
        raise SystemExit(workers.supervise(settings, args.app))
    _run(_serve(settings, args.app, reuse_port=args.worker), settings.event_loop)
    if settings.server == "granian":
        from examples_runtime.granian_server import exit_now

        exit_now()
