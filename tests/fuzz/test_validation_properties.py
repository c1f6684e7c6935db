"""Properties of the runtime's input validation (examples_runtime.handlers), for any input.

In process, no server: the validating serde that parses a handler's body, and the wrapper
that turns a refused body into a terminal 400 naming the problem.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import restate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field
from restate import TerminalError
from restate.serde import JsonSerde

from examples_runtime.handlers import InvalidInput, ValidatingSerde, instrument

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Subscription(BaseModel):
    """The shape of SubscriptionService/add's body (camelCase, snake_case accepted)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    user_id: str = Field(alias="userId")
    credit_card: str = Field(alias="creditCard")
    subscriptions: list[str]


class User(BaseModel):
    name: str
    email: str


def serde(annotation: Any) -> ValidatingSerde:
    return ValidatingSerde(annotation, JsonSerde())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
# Keys a client might send: the real ones, their snake_case, and anything.
subscription_like = st.dictionaries(
    st.sampled_from(["userId", "creditCard", "subscriptions", "user_id", "credit_card"])
    | st.text(max_size=8),
    json_values,
    max_size=5,
)


@SETTINGS
@given(body=st.binary(max_size=300))
def test_any_bytes_give_a_value_or_a_named_problem_never_an_exception(body: bytes) -> None:
    kinds: list[tuple[Any, type]] = [
        (Subscription, Subscription), (User, User), (str, str), (list[str], list), (bool, bool)
    ]  # fmt: skip
    for annotation, kind in kinds:
        result = serde(annotation).deserialize(body)
        if isinstance(result, InvalidInput):
            assert result.problem.strip(), "a refusal names the problem"
        else:
            assert isinstance(result, kind)


@SETTINGS
@given(value=json_values | subscription_like)
def test_any_json_value_is_accepted_exactly_when_it_is_valid(value: Any) -> None:
    body = json.dumps(value).encode()
    result = serde(Subscription).deserialize(body)
    try:
        expected: Subscription | None = Subscription.model_validate(value)
    except ValueError:
        expected = None
    if expected is None:
        assert isinstance(result, InvalidInput)
        assert result.problem
    else:
        assert result == expected


@SETTINGS
@given(user_id=st.text(), card=st.text(), subs=st.lists(st.text(), max_size=5))
def test_valid_bodies_round_trip_in_both_spellings(
    user_id: str, card: str, subs: list[str]
) -> None:
    expected = Subscription.model_validate(
        {"userId": user_id, "creditCard": card, "subscriptions": subs}
    )
    camel = {"userId": user_id, "creditCard": card, "subscriptions": subs}
    snake = {"user_id": user_id, "credit_card": card, "subscriptions": subs}
    for body in (camel, snake):
        assert serde(Subscription).deserialize(json.dumps(body).encode()) == expected


@SETTINGS
@given(
    present=st.sets(st.sampled_from(["userId", "creditCard", "subscriptions"])),
    wrong=st.sampled_from([1, None, True, {"a": 1}]),
)
def test_the_problem_names_every_missing_or_wrong_field(present: set[str], wrong: Any) -> None:
    body: dict[str, Any] = {"userId": "u", "creditCard": "c", "subscriptions": ["s"]}
    body = {k: v for k, v in body.items() if k in present}
    if "subscriptions" in body:
        body["subscriptions"] = [wrong]
    result = serde(Subscription).deserialize(json.dumps(body).encode())
    assert isinstance(result, InvalidInput)
    for name in {"userId", "creditCard"} - present:
        assert f"{name}: Field required" in result.problem
    if "subscriptions" in present:
        assert "subscriptions.0: Input should be a valid string" in result.problem
    else:
        assert "subscriptions: Field required" in result.problem


@SETTINGS
@given(blank=st.text(alphabet=" \t\r\n", max_size=20))
def test_an_empty_body_is_named_as_such(blank: str) -> None:
    result = serde(str).deserialize(blank.encode())
    assert result == InvalidInput("request body is empty: expected a JSON value")


@SETTINGS
@given(depth=st.integers(min_value=1, max_value=20_000), opener=st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_refused_not_a_crash(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    body = (opener * depth + "1" + closer * depth).encode()
    result = serde(User).deserialize(body)
    assert isinstance(result, InvalidInput) and result.problem


class FakeContext:
    def __init__(self, key: str) -> None:
        self._key = key

    def request(self) -> Any:
        return type("Request", (), {"id": "inv_fuzz"})()

    def key(self) -> str:
        return self._key

    # The runtime's wrapper names the steps of every context it is given (examples_runtime.
    # handlers._name_steps); a refused body must not get as far as running one.
    def run_typed(self, name: str, action: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"step {name!r} ran for a refused body")

    run = run_typed


async def call(fn: Any, ctx: FakeContext, arg: Any) -> Any:
    return await fn(ctx, arg)


workflow = restate.Workflow("PropertyWorkflow")
ran: list[User] = []


@workflow.main()
async def run(ctx: restate.WorkflowContext, user: User) -> bool:
    ran.append(user)
    return True


instrument([workflow])


@SETTINGS
@given(body=st.binary(max_size=100), key=st.text(min_size=1, max_size=20))
def test_a_refused_body_ends_the_invocation_with_a_400_and_runs_nothing(
    body: bytes, key: str
) -> None:
    handler = workflow.handlers["run"]
    parsed = handler.handler_io.input_serde.deserialize(body)
    ran.clear()
    if isinstance(parsed, InvalidInput):
        try:
            asyncio.run(call(handler.fn, FakeContext(key), parsed))
        except TerminalError as error:
            assert error.status_code == 400
            assert error.message.startswith(f"invalid input: {parsed.problem}")
            # A workflow's `run` says how to free the key for a corrected request.
            assert f"one run of key {key}" in error.message
            assert "restate invocations purge inv_fuzz" in error.message
        else:
            raise AssertionError("a refused body must end the invocation")
        assert ran == [], "the handler ran on a refused body"
    else:
        assert asyncio.run(call(handler.fn, FakeContext(key), parsed)) is True
        assert ran == [parsed]
