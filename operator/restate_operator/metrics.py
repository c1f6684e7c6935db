"""Prometheus metrics of the operator (kopf has none of its own), served on METRICS_PORT."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "restate_operator_reconciles",
    "Reconciliations of RestateRegistrations, by result (ok, pending, error).",
    ["result"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "restate_operator_reconcile_errors",
    "Failed or blocked reconciliations, by condition reason.",
    ["reason"],
    registry=REGISTRY,
)
AVAILABLE_TO_REGISTERED = Histogram(
    "restate_operator_available_to_registered_seconds",
    "Time from a Deployment revision becoming Available to its registration with Restate.",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300),
    registry=REGISTRY,
)
REGISTERED = Gauge(
    "restate_operator_registered_deployments",
    "RestateRegistrations currently Ready (registered with Restate).",
    registry=REGISTRY,
)
ADMIN_CALLS = Counter(
    "restate_operator_restate_registrations",
    "POST /deployments calls, by kind (new, force).",
    ["kind"],
    registry=REGISTRY,
)

_ready: set[tuple[str, str]] = set()


def set_ready(namespace: str, name: str, ready: bool) -> None:
    if ready:
        _ready.add((namespace, name))
    else:
        _ready.discard((namespace, name))
    REGISTERED.set(len(_ready))


def serve(host: str, port: int) -> None:
    if port:
        start_http_server(port, addr=host, registry=REGISTRY)
