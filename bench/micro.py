"""What one piece of per-step work costs, in-process (no server, no load): microseconds a call.

    .venv/bin/python bench/micro.py [--out FILE]

The end-to-end options run (`bench/run.py --options`) says whether an option moves the
service's CPU per operation beyond the machine's noise; this says how much it could move it:
each figure is the best of 5 `timeit` rounds, to compare with the milliseconds per operation
of the benchmark. The SDK's `run_typed` prelude is reproduced from `restate/server_context.py`
(1.3.0) as it runs for the default serde; the log line and the stub go through the runtime's
real JSON handler, its file descriptor pointed at /dev/null.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import inspect
import logging
import os
import sys
import time
import timeit
import typing
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import restate
from pydantic import BaseModel
from restate.serde import DefaultSerde, JsonSerde, PydanticJsonSerde
from restate.types import extract_core_type

from examples_runtime import logs, metrics
from examples_runtime.handlers import ValidatingSerde
from examples_runtime.logs import configure_logging

BODY = b'{"name": "Bob", "email": "bob@builder.com"}'


class UserModel(BaseModel):
    name: str
    email: str


@dataclasses.dataclass
class UserDataclass:
    name: str
    email: str


class UserStruct(msgspec.Struct):
    name: str
    email: str


def us_per_call(fn: Callable[[], object], number: int = 20_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def run_typed_prelude(action: Callable[..., Any], options: restate.RunOptions[Any]) -> object:
    """Lines 961-969 of the SDK's `ServerInvocationContext.run_typed`: what runs per step
    before the VM is called, for the default serde (skipped for any other serde)."""
    if isinstance(options.serde, DefaultSerde):
        options = copy.copy(options)
        if options.type_hint is None:
            options.type_hint = inspect.signature(action, eval_str=True).return_annotation
        kind, core = extract_core_type(options.type_hint)
        if kind in ("simple", "optional"):
            options.type_hint = core
        options.serde = typing.cast(DefaultSerde[Any], options.serde).with_maybe_type(
            options.type_hint
        )
    return options.serde


def figures() -> list[tuple[str, float]]:
    from subscriptions.stubs import create_subscription  # a @stub step returning str

    def plain_step(user_id: str, subscription: str, payment_ref: str) -> str:
        return "SUCCESS"

    adapters = {
        "pydantic model (default)": ValidatingSerde(UserModel, JsonSerde()),
        "stdlib dataclass": ValidatingSerde(UserDataclass, JsonSerde()),
        "dict[str, str]": ValidatingSerde(dict[str, str], JsonSerde()),
    }
    rows: list[tuple[str, float]] = []
    for kind, serde in adapters.items():
        rows.append(
            (
                f"signup input, runtime's validation: {kind}",
                us_per_call(partial(serde.deserialize, BODY)),
            )
        )
    rows.append(
        (
            "signup input, msgspec.Struct (msgspec.json.decode)",
            us_per_call(lambda: msgspec.json.decode(BODY, type=UserStruct)),
        )
    )
    sdk_serde: PydanticJsonSerde[UserModel] = PydanticJsonSerde(UserModel)  # type: ignore[no-untyped-call]
    rows.append(
        (
            "signup input, the SDK's own PydanticJsonSerde (no runtime validation)",
            us_per_call(partial(sdk_serde.deserialize, BODY)),
        )
    )
    default, explicit = restate.RunOptions[Any](), restate.RunOptions[Any](serde=JsonSerde())
    rows.append(
        (
            "run_typed prelude, default serde, `@stub` step (precomputed `__signature__`)",
            us_per_call(lambda: run_typed_prelude(create_subscription, default)),
        )
    )
    rows.append(
        (
            "run_typed prelude, default serde, plain function (signature evaluated)",
            us_per_call(lambda: run_typed_prelude(plain_step, default)),
        )
    )
    rows.append(
        (
            "run_typed prelude, `RunOptions(serde=JsonSerde())`",
            us_per_call(lambda: run_typed_prelude(create_subscription, explicit)),
        )
    )
    logger = logging.getLogger("examples.stubs")
    call = {"step": "create_subscription", "stub_args": ["Sam", "Netflix", "ref"]}
    rows.append(
        (
            'one "stub executed" JSON log line, `logger.info` (written to /dev/null)',
            us_per_call(lambda: logger.info("stub executed", extra={**call, "result": "SUCCESS"})),
        )
    )
    labels = {"service": "SubscriptionService", "handler": "add"}
    attempts = metrics.HANDLER_ATTEMPTS.labels(**labels)
    latency = metrics.HANDLER_LATENCY.labels(**labels)

    def handler_bookkeeping() -> None:
        token = logs.invocation_id.set("inv_1")
        attempts.inc()
        started = time.perf_counter()
        logs.invocation_id.reset(token)
        latency.observe(time.perf_counter() - started)

    rows.append(
        (
            "the handler wrapper's own work per attempt (log context, counter, histogram)",
            us_per_call(handler_bookkeeping),
        )
    )
    loop = asyncio.new_event_loop()

    async def steps(n: int) -> None:
        for _ in range(n):
            await create_subscription(user_id="Sam", subscription="Netflix", payment_ref="ref")

    async def bare(n: int) -> None:
        for _ in range(n):
            plain_step(user_id="Sam", subscription="Netflix", payment_ref="ref")

    n = 5_000
    for name, coro in (
        ("the whole `@stub` wrapper (log line, counter)", steps),
        ("the step called bare", bare),
    ):
        best = min(timeit.repeat(lambda c=coro: loop.run_until_complete(c(n)), number=1, repeat=5))  # type: ignore[misc]
        rows.append((f"one step: {name}", best / n * 1e6))
    loop.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    # The benchmark's settings: no injected failures (bench/run.py, TS_ENV).
    os.environ["FAILURE_PROBABILITIES"] = '{"create_subscription": 0}'
    configure_logging("INFO", "json")
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # the JSON handler writes to fd 2
    try:
        rows = figures()
    finally:
        os.dup2(saved, 2)
    lines = ["| per call | us |", "|---|---:|", *(f"| {n} | {us:.2f} |" for n, us in rows)]
    text = f"Python {sys.version.split()[0]}, best of 5 rounds\n\n" + "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
