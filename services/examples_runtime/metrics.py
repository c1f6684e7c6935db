"""Prometheus metrics of one service process, served on /metrics."""

from __future__ import annotations

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

# The `_created` timestamp series double the output and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

HANDLER_ATTEMPTS = Counter(
    "restate_handler_attempts",
    "Handler attempts started (a retried or resumed invocation counts again).",
    ["service", "handler"],
)
HANDLER_LATENCY = Histogram(
    "restate_handler_attempt_duration_seconds",
    "Duration of handler attempts that returned or failed (suspended ones excluded).",
    ["service", "handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HANDLER_FAILURES = Counter(
    "restate_handler_failures",
    "Handler attempts that failed, by kind: terminal (not retried), invalid_input (HTTP 400), "
    "retryable (Restate retries).",
    ["service", "handler", "kind"],
)
STUB_EXECUTIONS = Counter(
    "example_stub_executions",
    "Real executions of a stub (a pretend external system), by outcome.",
    ["step", "outcome"],
)


def exposition() -> bytes:
    """The text /metrics serves: this process's metrics, or every worker's with WORKERS > 1."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
