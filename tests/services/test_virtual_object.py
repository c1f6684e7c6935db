"""4. Virtual object: one handler at a time per key, keys independent, count never below 0."""

from __future__ import annotations

import asyncio

import httpx

from testkit.restate import Suite


def test_200_concurrent_greets_on_one_key_count_1_to_200(suite: Suite) -> None:
    async def greet_all() -> list[str]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(
            base_url=suite.server.ingress_url, timeout=120, limits=limits
        ) as client:
            answers = await asyncio.gather(
                *(client.post("/GreeterObject/crowd/greet", json="Hi") for _ in range(200))
            )
        assert all(a.status_code == 200 for a in answers)
        return [a.json() for a in answers]

    results = asyncio.run(greet_all())
    assert sorted(results) == sorted(f"Hi crowd for the {n}-th time." for n in range(1, 201))


def test_keys_are_independent(suite: Suite) -> None:
    suite.ingress.post("/GreeterObject/alice/greet", json="Hi")
    suite.ingress.post("/GreeterObject/alice/greet", json="Hi")
    assert suite.ingress.post("/GreeterObject/bob/greet", json="Yo").json() == (
        "Yo bob for the 1-th time."
    )
    assert suite.ingress.post("/GreeterObject/alice/greet", json="Hi").json() == (
        "Hi alice for the 3-th time."
    )


def test_ungreet_never_goes_below_zero(suite: Suite) -> None:
    for _ in range(3):
        answer = suite.ingress.post("/GreeterObject/nobody/ungreet")
        assert answer.json() == "Dear nobody, taking one greeting back: 0."
    suite.ingress.post("/GreeterObject/nobody/greet", json="Hi")
    assert suite.ingress.post("/GreeterObject/nobody/greet", json="Hi").json() == (
        "Hi nobody for the 2-th time."
    )
    assert suite.ingress.post("/GreeterObject/nobody/ungreet").json() == (
        "Dear nobody, taking one greeting back: 1."
    )
