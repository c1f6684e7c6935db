"""SERVER and EVENT_LOOP: every server/loop pair serves Restate (h2c) and HTTP/1.1 probes on the
same port, the metrics port, several workers, and exits cleanly on SIGTERM."""

from __future__ import annotations

import re
import signal

import httpx
import pytest

from testkit.ports import free_port
from testkit.restate import SuiteFactory


@pytest.mark.parametrize(
    ("server", "loop", "workers"),
    [
        ("granian", "uvloop", "1"),  # the default
        ("granian", "asyncio", "1"),
        ("granian", "uvloop", "2"),
        ("hypercorn", "asyncio", "1"),
        ("hypercorn", "uvloop", "1"),
        ("hypercorn", "asyncio", "2"),
    ],
)
def test_server_and_loop_serve_restate_probes_and_metrics(
    make_suite: SuiteFactory, server: str, loop: str, workers: str
) -> None:
    metrics_port = free_port()
    env = {"SERVER": server, "EVENT_LOOP": loop, "WORKERS": workers}
    suite = make_suite("user-object", env={**env, "METRICS_PORT": str(metrics_port)})
    service = suite["user-object"]
    for i in range(10):  # discovered and invoked by Restate over h2c
        answer = suite.ingress.post(f"/GreeterObject/{server}-{i}/greet", json="Hi")
        assert answer.json() == f"Hi {server}-{i} for the 1-th time."

    with httpx.Client(http1=True, http2=False) as http1:  # probes and Prometheus: HTTP/1.1
        assert http1.get(f"{service.url}/readyz").status_code == 200
        scraped = http1.get(f"http://127.0.0.1:{metrics_port}/metrics")
        found = re.search(
            r'restate_handler_attempts_total{handler="greet",[^}]*} (\S+)', scraped.text
        )
        assert found and float(found.group(1)) == 10, scraped.text[:500]
        assert http1.get(f"http://127.0.0.1:{metrics_port}/discover").status_code == 404

    service.process.signal(signal.SIGTERM)
    assert service.process.wait(15) == 0, service.process.tail()
    assert service.records("stopped"), service.process.tail()
