"""WORKERS > 1: worker processes share the port; metrics and shutdown cover all (both servers)."""

from __future__ import annotations

import re
import signal

import httpx
import pytest

from testkit.restate import SuiteFactory


def attempts(metrics: str) -> float:
    found = re.search(r'restate_handler_attempts_total{handler="greet",[^}]*} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("server", ["granian", "hypercorn"])
def test_two_workers_serve_and_report_metrics_of_both(
    make_suite: SuiteFactory, server: str
) -> None:
    suite = make_suite("user-object", env={"WORKERS": "2", "SERVER": server})
    service = suite["user-object"]
    for i in range(20):
        answer = suite.ingress.post(f"/GreeterObject/worker-{i}/greet", json="Hi")
        assert answer.json() == f"Hi worker-{i} for the 1-th time."

    # Each scrape is a new connection, answered by either worker: all show every attempt.
    for _ in range(6):
        assert attempts(httpx.get(f"{service.url}/metrics").text) == 20

    service.process.signal(signal.SIGTERM)
    assert service.process.wait(15) == 0
