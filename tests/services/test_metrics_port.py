"""METRICS_PORT: /metrics, /healthz and /readyz on a port of their own, and nothing else there,
so that a NetworkPolicy can let Prometheus scrape without reaching Restate's endpoint."""

from __future__ import annotations

import httpx
import pytest

from testkit.ports import free_port
from testkit.restate import SuiteFactory


@pytest.mark.parametrize("workers", ["1", "2"])
def test_metrics_port_serves_metrics_only(make_suite: SuiteFactory, workers: str) -> None:
    metrics_port = free_port()
    suite = make_suite("user-object", env={"METRICS_PORT": str(metrics_port), "WORKERS": workers})
    answer = suite.ingress.post("/GreeterObject/scraped/greet", json="Hi")
    assert answer.json() == "Hi scraped for the 1-th time."  # Restate still reaches PORT

    metrics_url = f"http://127.0.0.1:{metrics_port}"
    scraped = httpx.get(f"{metrics_url}/metrics")
    assert scraped.status_code == 200
    assert 'restate_handler_attempts_total{handler="greet"' in scraped.text
    assert httpx.get(f"{metrics_url}/healthz").text == "ok"
    assert httpx.get(f"{metrics_url}/readyz").status_code == 200
    # The Restate endpoint (discovery, invocations) and the docs are not served there.
    for method, path in [
        ("GET", "/discover"),
        ("POST", "/invoke/GreeterObject/greet"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
    ]:
        assert httpx.request(method, f"{metrics_url}{path}").status_code == 404, path
    # PORT keeps serving /metrics, for local runs.
    assert httpx.get(f"{suite['user-object'].url}/metrics").status_code == 200
