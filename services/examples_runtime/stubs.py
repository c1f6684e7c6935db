"""The `@stub` decorator: a pretend external system that fails on purpose.

Every real execution is logged ("stub executed", with the step and its arguments) and counted,
so a test, or a reader of the logs, can see that a step Restate has journaled never runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import random
import signal
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from examples_runtime.metrics import STUB_EXECUTIONS
from examples_runtime.settings import SettingsError, get_settings

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("examples.stubs")

# Default failure probability of every stub defined in this process, by step name.
DEFAULT_FAILURE_PROBABILITIES: dict[str, float] = {}


class InjectedFailure(RuntimeError):
    """A failure the example raises on purpose; Restate retries the step."""


def stub(
    failure_probability: float = 0.0,
) -> Callable[[Callable[P, T]], Callable[P, Coroutine[Any, Any, T]]]:
    """Marks a function as a flaky external call, failing with this default probability.

    The decorated stub is a coroutine function: `ctx.run_typed` awaits it on the event loop.
    (A plain function would be sent to a thread pool by the SDK, for every step.)
    """

    def decorate(fn: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
        step = fn.__name__
        DEFAULT_FAILURE_PROBABILITIES[step] = failure_probability
        executed: list[Any] = []  # the step's labelled success counter, looked up once

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            settings = get_settings()
            probability = settings.failure_probabilities.get(step, failure_probability)
            if settings.stub_latency_seconds:  # the external system takes its time to answer
                await asyncio.sleep(settings.stub_latency_seconds)
            if random.random() < probability:
                call = {"step": step, "stub_args": [*args, *kwargs.values()]}
                STUB_EXECUTIONS.labels(step=step, outcome="injected_failure").inc()
                if settings.failure_mode == "crash":
                    logger.error("injected failure: crashing the process", extra=call)
                    os.kill(os.getpid(), signal.SIGKILL)
                logger.warning("injected failure", extra=call)
                raise InjectedFailure(f"{step} failed (injected, probability {probability})")
            result = fn(*args, **kwargs)
            if not executed:
                executed.append(STUB_EXECUTIONS.labels(step=step, outcome="success"))
            executed[0].inc()
            # One dict for the line's fields, and none when the level leaves the line out.
            if logger.isEnabledFor(logging.INFO):
                stub_args = [*args, *kwargs.values()]
                logger.info(
                    "stub executed", extra={"step": step, "stub_args": stub_args, "result": result}
                )
            return result

        # The SDK's `ctx.run_typed` reads the step's return type with
        # `inspect.signature(action, eval_str=True)` on every call, which evaluates the string
        # annotations again each time; a precomputed signature (the same one) is returned as is.
        with contextlib.suppress(NameError, TypeError, ValueError):
            wrapper.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def check_failure_settings() -> None:
    """Rejects failure probabilities for steps this process does not have."""
    unknown = set(get_settings().failure_probabilities) - set(DEFAULT_FAILURE_PROBABILITIES)
    if unknown:
        known = ", ".join(sorted(DEFAULT_FAILURE_PROBABILITIES)) or "none"
        raise SettingsError(
            f"invalid settings: FAILURE_PROBABILITIES names unknown steps {sorted(unknown)}; "
            f"this service's steps: {known}"
        )
