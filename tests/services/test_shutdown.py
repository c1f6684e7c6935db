"""8. SIGTERM: the service exits within a few seconds, even mid-invocation; Restate resumes it."""

from __future__ import annotations

import signal
import time

import httpx

from testkit.processes import wait_until
from testkit.restate import SuiteFactory

# SHUTDOWN_GRACE_SECONDS is 5 by default; "a few seconds" leaves room for a loaded machine.
EXIT_WITHIN = 15.0


def test_sigterm_mid_invocation_exits_and_the_invocation_completes_after_restart(
    make_suite: SuiteFactory,
) -> None:
    suite = make_suite("building-blocks", env={"BUILDING_BLOCKS_SLEEP_SECONDS": "0"})
    service = suite["building-blocks"]
    invocation = suite.ingress.post("/MyService/run/send").json()["invocationId"]
    # The handler is now running, waiting for its awakeable: an in-flight request.
    wait_until(
        lambda: invocation in httpx.get(f"{service.url}/awakeables").json(),
        30,
        "the handler to wait on its awakeable",
    )
    awakeable = httpx.get(f"{service.url}/awakeables").json()[invocation]

    started = time.monotonic()
    service.process.signal(signal.SIGTERM)
    code = service.process.wait(EXIT_WITHIN)
    assert code == 0, f"unclean exit {code}:\n{service.process.tail()}"
    assert time.monotonic() - started < EXIT_WITHIN

    service.start()
    suite.ingress.post(f"/restate/awakeables/{awakeable}/resolve", json="after restart")
    result = suite.ingress.get(f"/restate/invocation/{invocation}/attach")
    assert result.status_code == 200, result.text
    assert result.json()["greeting"] == "after restart"


def test_sigterm_after_traffic_exits_promptly(make_suite: SuiteFactory) -> None:
    # The SDK hooks SIGTERM on its first request; shutdown must still work after traffic.
    suite = make_suite("user-object")
    service = suite["user-object"]
    for _ in range(5):
        assert suite.ingress.post("/GreeterObject/term/greet", json="Hi").status_code == 200
    service.process.signal(signal.SIGTERM)
    assert service.process.wait(EXIT_WITHIN) == 0
    assert any(r["message"] == "stopped" for r in service.records())
