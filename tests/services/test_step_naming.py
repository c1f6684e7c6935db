"""The step-naming wrapper keeps the step's signature visible to the SDK, which picks a step's
serde from its return type (`inspect.signature(action, eval_str=True)` in `ctx.run_typed`)."""

from __future__ import annotations

import inspect

from pydantic import BaseModel

from examples_runtime.handlers import _named


class Receipt(BaseModel):
    amount: int


async def pay(amount: int) -> Receipt:
    return Receipt(amount=amount)


def refund(amount: int) -> Receipt:
    return Receipt(amount=amount)


def test_a_named_step_keeps_its_return_type() -> None:
    for step in (pay, refund):
        named = _named(step.__name__, step)
        assert inspect.signature(named, eval_str=True).return_annotation is Receipt
        assert inspect.iscoroutinefunction(named) is inspect.iscoroutinefunction(step)
