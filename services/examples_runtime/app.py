"""The ASGI app of one example service: the Restate endpoint plus plain HTTP for operations.

Restate's requests (`/discover`, `/invoke/...`, `/health`) go straight to the SDK's endpoint;
`/healthz`, `/readyz`, `/metrics` and any routes the example adds go to a small FastAPI app.
With METRICS_PORT set, that port serves `/metrics`, `/healthz` and `/readyz` only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

import restate
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from restate._internal import VMException
from restate.server import parse_path
from restate.server_types import Receive, Scope, Send

from examples_runtime import lifecycle, metrics
from examples_runtime.handlers import AnyService, instrument
from examples_runtime.logs import configure_logging
from examples_runtime.settings import SettingsError, get_settings
from examples_runtime.stubs import check_failure_settings

logger = logging.getLogger("examples_runtime.app")

OPERATIONS_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json")
METRICS_PORT_PATHS = ("/healthz", "/readyz", "/metrics")


class ServiceApp:
    """Routes each request to the Restate endpoint or to the operations app, by path."""

    def __init__(
        self,
        restate_app: restate.server_types.RestateAppT,
        http_app: FastAPI,
        metrics_port: int | None = None,
    ) -> None:
        self.restate_app = restate_app
        self.http_app = http_app
        self.metrics_port = metrics_port
        self._http_prefixes = OPERATIONS_PATHS + tuple(
            getattr(route, "path", "").split("{")[0] for route in http_app.routes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        port = (scope.get("server") or (None, None))[1]  # where the connection came in
        on_metrics_port = self.metrics_port is not None and port == self.metrics_port
        if scope["type"] == "http" and on_metrics_port and path not in METRICS_PORT_PATHS:
            # Neither the Restate endpoint nor the example's own routes on the metrics port.
            not_found = PlainTextResponse("not found", status_code=404)
            await not_found(scope, receive, send)  # type: ignore[arg-type]
        elif (
            scope["type"] != "http"  # lifespan too
            or path.startswith(self._http_prefixes)
            # Not a path of Restate's protocol: the SDK would answer an empty 404.
            or parse_path(path)["type"] == "unknown"
        ):
            await self.http_app(scope, receive, send)  # type: ignore[arg-type]
        else:
            started = False

            async def tracked(message: Any) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await self.restate_app(scope, receive, tracked)
            except VMException as error:
                # Not Restate calling (curl, a probe, a scanner: no Restate protocol content
                # type, or a version the SDK does not speak): the SDK raises out of the app,
                # an empty 500. Answer its status and message instead. (After the identity
                # check: with RESTATE_IDENTITY_KEYS, an unsigned request still gets 401.)
                if started:
                    raise
                status, problem = _vm_problem(error)
                await _refuse(scope, receive, send, status, problem)


def _vm_problem(error: VMException) -> tuple[int, str]:
    """(status, message) of the SDK's `(415) unrecognized content-type ...`."""
    text = str(error)
    match = re.match(r"\((\d{3})\)\s*(.*)", text, re.DOTALL)
    if match and 400 <= int(match.group(1)) < 600:
        return int(match.group(1)), match.group(2)
    return 500, text


class _RefusedRequestFilter(logging.Filter):
    """Drops the SDK's traceback for a request it refused with a 4xx (answered by `_refuse`,
    which logs one warning line instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, VMException) and 400 <= _vm_problem(error)[0] < 500)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, problem: str) -> None:
    logger.warning("refused %s %s: %s", scope.get("method"), scope.get("path"), problem)
    response = PlainTextResponse(problem, status_code=status)
    await response(scope, receive, send)  # type: ignore[arg-type]


async def _bad_request(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
    return JSONResponse({"error": "; ".join(problems)}, status_code=400)


def create_app(services: Iterable[AnyService], http_app: FastAPI | None = None) -> ServiceApp:
    """The app serving these Restate services, with validation, metrics and structured logs."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    check_failure_settings()
    logging.getLogger("restate.server").addFilter(_RefusedRequestFilter())
    services = list(services)
    instrument(services)

    http_app = http_app or FastAPI()
    http_app.add_exception_handler(RequestValidationError, _bad_request)

    @http_app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok"

    @http_app.get("/readyz", response_class=PlainTextResponse)
    async def readyz(response: Response) -> str:
        if lifecycle.draining.is_set():
            response.status_code = 503
            return "draining"
        return "ready"

    @http_app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    try:
        endpoint = restate.app(services, identity_keys=settings.restate_identity_keys or None)
    except Exception as error:  # the SDK parses the keys here
        raise SettingsError(f"invalid settings: RESTATE_IDENTITY_KEYS: {error}") from None
    return ServiceApp(endpoint, http_app, settings.metrics_port)
