"""Prometheus metrics of the operator (kopf has none of its own), served on METRICS_PORT."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "restate_operator_reconciles",
    "Reconciliations of both kinds, by result (ok, pending, error).",
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


# ----------------------------------------------------------------- RestateWorkload
VERSIONS = Gauge(
    "restate_operator_workload_versions",
    "Versions of RestateWorkloads, by state (Pending, Current, Draining, Removing).",
    ["state"],
    registry=REGISTRY,
)
PINNED = Gauge(
    "restate_operator_pinned_invocations",
    "Invocations not completed that are pinned to a version's Restate deployment.",
    ["namespace", "workload", "version"],
    registry=REGISTRY,
)
DRAIN_DURATION = Histogram(
    "restate_operator_drain_duration_seconds",
    "From a version stopping being current to its removal (pinned invocations + drain delay).",
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400),
    registry=REGISTRY,
)
READY_TO_REGISTERED = Histogram(
    "restate_operator_ready_to_registered_seconds",
    "From a RestateWorkload version's ReplicaSet becoming Ready to its registration.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300),
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "restate_operator_reconcile_duration_seconds",
    "Duration of one reconciliation, by kind (RestateWorkload, RestateRegistration).",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
ADMIN_API_CALLS = Counter(
    "restate_operator_admin_api_calls",
    "Calls of Restate's admin API, by operation and outcome (ok, rejected, unreachable).",
    ["operation", "outcome"],
    registry=REGISTRY,
)

_versions: dict[tuple[str, str], dict[str, int]] = {}
_pinned: dict[tuple[str, str], set[str]] = {}
STATES = ("Pending", "Current", "Draining", "Removing")


def set_workload(namespace: str, name: str, states: dict[str, int], pinned: dict[str, int]) -> None:
    """One workload's versions by state and pinned invocations per version (empty: forget)."""
    key = (namespace, name)
    if states:
        _versions[key] = states
    else:
        _versions.pop(key, None)
    for state in STATES:
        VERSIONS.labels(state).set(sum(v.get(state, 0) for v in _versions.values()))
    for gone in _pinned.get(key, set()) - set(pinned):
        PINNED.remove(namespace, name, gone)
    for version, count in pinned.items():
        PINNED.labels(namespace, name, version).set(count)
    _pinned[key] = set(pinned)
