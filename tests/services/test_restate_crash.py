"""3. restate-server killed with SIGKILL mid-load: accepted invocations complete, state intact."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from testkit.processes import wait_until
from testkit.restate import SuiteFactory

KEYS = [f"crash-{k}" for k in range(5)]
PER_KEY = 40


def test_server_sigkill_mid_load(make_suite: SuiteFactory) -> None:
    suite = make_suite("user-object")
    server = suite.server
    sent = threading.Event()
    requests = [(key, i) for i in range(PER_KEY) for key in KEYS]

    def greet(request: tuple[str, int]) -> str | None:
        key, i = request
        if i == PER_KEY // 2:
            sent.set()
        try:
            # An idempotency key makes "send it again" safe when the answer was lost.
            answer = httpx.post(
                f"{server.ingress_url}/GreeterObject/{key}/greet/send",
                json="Hi",
                headers={"idempotency-key": f"{key}-{i}"},
                timeout=10,
            )
        except httpx.HTTPError:
            return None
        return str(answer.json()["invocationId"]) if answer.status_code == 202 else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.map(greet, requests)
        sent.wait(30)
        server.kill()  # SIGKILL, in the middle of the load
        first_ids = list(first)
    assert None in first_ids, "the kill was meant to interrupt the load"
    accepted = sum(1 for i in first_ids if i)

    server.process.start()
    wait_until(server.healthy, 60, "restate-server to restart")
    # Requests whose answer was lost are sent again with the same idempotency key.
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(greet, requests))
    assert all(ids), "every request is accepted after the restart"
    assert set(filter(None, first_ids)) <= set(ids), "an accepted invocation was lost"
    assert accepted > 0

    results = [
        httpx.get(f"{server.ingress_url}/restate/invocation/{i}/attach", timeout=60).json()
        for i in ids
    ]
    counts = Counter(r.split(" for the ")[0].split()[-1] for r in results)
    assert counts == {key: PER_KEY for key in KEYS}
    for key in KEYS:
        numbers = sorted(
            int(r.split("the ")[1].split("-th")[0]) for r in results if f" {key} " in r
        )
        assert numbers == list(range(1, PER_KEY + 1)), f"{key}: state lost or doubled"
        # The object's state agrees: one more greeting is the next number.
        answer = suite.ingress.post(f"/GreeterObject/{key}/greet", json="Hi")
        assert answer.json() == f"Hi {key} for the {PER_KEY + 1}-th time."
