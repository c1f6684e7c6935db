"""What the runtime wraps around every Restate handler of the examples.

- Input validation: the SDK answers a body it cannot parse with a terminal error 500. Here the
  body is validated against the handler's type hint first and a bad one ends the invocation
  with a terminal error 400 naming the problem: not retried, and no step runs. A workflow's
  `run` ends with it, and Restate keeps that outcome (one run per key, for the workflow
  retention): the message says how to free the key for a corrected request.
- Instrumentation: attempts, latency and failures per handler (see `metrics`), and the
  invocation id and the attempt in every log line written while the handler runs, the step's
  journal name in every line written while a step runs (see `logs`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from restate import Service, TerminalError, VirtualObject, Workflow
from restate.exceptions import SdkInternalException
from restate.handler import Handler
from restate.serde import Serde
from restate.server_context import DisconnectedException

from examples_runtime import logs, metrics

logger = logging.getLogger("examples_runtime.handlers")

AnyService = Service | VirtualObject | Workflow


# Appended to the 400 of a workflow's `run`: Restate refuses another run of this key (409, or
# `PreviouslyAccepted` for /send) until the workflow retention ends, 1 day by default.
WORKFLOW_KEY_USED = (
    "; this was the one run of key {key}: to run it with a corrected body, "
    "first purge this invocation (restate invocations purge {invocation_id})"
)


@dataclass(frozen=True)
class InvalidInput:
    """What the validating serde hands the handler wrapper instead of a value."""

    problem: str


def describe(error: ValidationError) -> str:
    """`userId: Field required; subscriptions.0: Input should be a valid string`."""
    parts = []
    for e in error.errors(include_url=False):
        location = ".".join(str(p) for p in e["loc"])
        parts.append(f"{location or 'body'}: {e['msg']}")
    return "; ".join(parts)


class ValidatingSerde(Serde[Any]):
    """Parses JSON into the handler's input type; never raises, so the wrapper can answer 400."""

    def __init__(self, annotation: Any, output: Serde[Any]) -> None:
        self._adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        self._output = output

    def deserialize(self, buf: bytes) -> Any:
        if not buf.strip():
            return InvalidInput("request body is empty: expected a JSON value")
        try:
            return self._adapter.validate_json(buf)
        except ValidationError as error:
            return InvalidInput(describe(error))

    def serialize(self, obj: Any) -> bytes:
        return self._output.serialize(obj)


def _named(name: str, action: Callable[..., Any]) -> Callable[..., Any]:
    """`action`, run with `name` (its entry's name in the journal) in its log records."""
    # Only `__wrapped__`, not `functools.wraps` (a step pays for this on every call): the SDK's
    # `inspect.signature` follows it to the step's own signature, return type included. A step
    # with a precomputed `__signature__` (every `@stub`) hands it on, so that look-up stops at
    # the wrapper instead of unwrapping one more level.
    signature = getattr(action, "__signature__", None) if inspect.isfunction(action) else None
    if inspect.iscoroutinefunction(action):

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            token = logs.run_name.set(name)
            try:
                return await action(*args, **kwargs)
            finally:
                logs.run_name.reset(token)

        run_async.__wrapped__ = action  # type: ignore[attr-defined]
        if signature is not None:
            run_async.__signature__ = signature  # type: ignore[attr-defined]
        return run_async

    def run_sync(*args: Any, **kwargs: Any) -> Any:
        token = logs.run_name.set(name)
        try:
            return action(*args, **kwargs)
        finally:
            logs.run_name.reset(token)

    run_sync.__wrapped__ = action  # type: ignore[attr-defined]
    if signature is not None:
        run_sync.__signature__ = signature  # type: ignore[attr-defined]
    return run_sync


# The SDK's context class -> its subclass whose `run_typed` and `run` name their steps.
_NAMING_CLASSES: dict[type, type] = {}


def _naming_class(cls: type) -> type:
    class NamingContext(cls):  # type: ignore[misc]
        # Positional-only: the step's own keyword arguments (`name=...`) pass through untouched.
        def run_typed(self, step: str, action: Callable[..., Any], /, *rest: Any, **kw: Any) -> Any:
            return super().run_typed(step, _named(step, action), *rest, **kw)

        def run(self, step: str, action: Callable[..., Any], /, *rest: Any, **kw: Any) -> Any:
            return super().run(step, _named(step, action), *rest, **kw)

    NamingContext.__name__ = NamingContext.__qualname__ = cls.__name__
    return NamingContext


def _name_steps(ctx: Any) -> None:
    """Makes this context's `ctx.run_typed` and `ctx.run` log their step's journal name."""
    # The context becomes an instance of a subclass made once per SDK class: no closures made
    # and no attributes set per call (the profiles had the per-call closures at 4-7% of the
    # CPU), and the SDK's class itself stays as it is.
    cls = type(ctx)
    naming = _NAMING_CLASSES.get(cls)
    if naming is None:
        naming = _NAMING_CLASSES[cls] = _naming_class(cls)
        _NAMING_CLASSES[naming] = naming  # a context already named stays as it is
    ctx.__class__ = naming


def _instrument(service: str, handler: Handler[Any, Any]) -> None:
    fn: Callable[..., Awaitable[Any]] = handler.fn
    labels = {"service": service, "handler": handler.name}
    # Labelled children looked up once: `.labels(...)` on every call costs a lock and a dict.
    attempts = metrics.HANDLER_ATTEMPTS.labels(**labels)
    latency = metrics.HANDLER_LATENCY.labels(**labels)

    @functools.wraps(fn)
    async def wrapper(ctx: Any, *args: Any) -> Any:
        token = logs.invocation_id.set(ctx.request().id)
        # Each call is one attempt: one HTTP stream from Restate (a retry, or a suspended
        # invocation resumed, calls the handler again).
        attempt_token = logs.attempt.set(logs.new_attempt())
        _name_steps(ctx)
        attempts.inc()
        started = time.perf_counter()
        failure: str | None = None
        try:
            if args and isinstance(args[0], InvalidInput):
                failure = "invalid_input"
                logger.warning("invalid input: %s", args[0].problem, extra=labels)
                message = f"invalid input: {args[0].problem}"
                if handler.kind == "workflow":
                    message += WORKFLOW_KEY_USED.format(
                        key=ctx.key(), invocation_id=ctx.request().id
                    )
                raise TerminalError(message, status_code=400)
            return await fn(ctx, *args)
        except TerminalError:
            failure = failure or "terminal"
            raise
        except DisconnectedException:
            failure = "disconnected"  # Restate closed the stream; not a failure of the handler.
            raise
        except (Exception, SdkInternalException):
            failure = "retryable"  # Raised here or in a step: Restate retries the attempt.
            raise
        except BaseException:
            failure = "suspended"  # The invocation suspended (or the task was cancelled).
            raise
        finally:
            logs.invocation_id.reset(token)
            logs.attempt.reset(attempt_token)
            if failure not in ("disconnected", "suspended"):
                latency.observe(time.perf_counter() - started)
                if failure is not None:
                    metrics.HANDLER_FAILURES.labels(**labels, kind=failure).inc()

    handler.fn = wrapper
    input_type = handler.handler_io.input_type
    if input_type is not None and not input_type.is_void and input_type.annotation is not None:
        handler.handler_io.input_serde = ValidatingSerde(
            input_type.annotation, handler.handler_io.input_serde
        )


def instrument(services: list[AnyService]) -> None:
    """Wraps every handler of these services, in place."""
    for service in services:
        for handler in service.handlers.values():
            _instrument(service.name, handler)
