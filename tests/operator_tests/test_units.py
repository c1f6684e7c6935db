"""The operator's pure parts: settings, backoff, revision markers, rollout state, conditions."""

from __future__ import annotations

from typing import Any

import pytest

from restate_operator import __main__ as entry
from restate_operator.conditions import Reason, ready_condition
from restate_operator.handlers import backoff, failure_delay
from restate_operator.reconcile import endpoint_for, revision_marker, rollout_state, template_hash
from restate_operator.settings import Settings, get_settings


def deployment(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "a:1"}]}}},
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 2,
            "availableReplicas": 2,
            "conditions": [
                {"type": "Available", "status": "True",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "lastUpdateTime": "2026-01-01T00:00:05Z"},
            ],
            **status,
        },
    }  # fmt: skip


def test_rollout_state() -> None:
    complete, _, since = rollout_state(deployment())
    assert complete and since is not None and since.second == 5
    assert not rollout_state(deployment(observedGeneration=1))[0]
    assert not rollout_state(deployment(updatedReplicas=1))[0]
    assert not rollout_state(deployment(replicas=3))[0]  # old pods still there
    scaled = deployment()
    scaled["spec"]["replicas"] = 0
    assert not rollout_state(scaled)[0]


def test_revision_marker_follows_template_and_options() -> None:
    d = deployment()
    base = revision_marker(template_hash(d), {})
    changed = deployment()
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "a:2"
    assert revision_marker(template_hash(changed), {}) != base
    assert revision_marker(template_hash(d), {"useHttp11": True}) != base
    assert revision_marker(template_hash(d), {"additionalHeaders": {"x": "1"}}) != base
    assert revision_marker(template_hash(deployment(replicas=7)), {}) == base  # status ignored


def test_endpoint_template() -> None:
    spec = {"service": {"name": "greeter", "port": 9080}, "path": "/restate/"}
    assert endpoint_for(Settings(), "ns", spec, "abc") == (
        "http://greeter.ns.svc.cluster.local:9080/restate/rev-abc"
    )
    local = Settings(endpoint_template="http://127.0.0.1:{port}{path}")
    assert endpoint_for(local, "ns", {"service": {"name": "g", "port": 1}}, "x") == (
        "http://127.0.0.1:1/rev-x"
    )
    with pytest.raises(ValueError):
        Settings(endpoint_template="http://{host}:{port}")


def test_endpoint_uses_the_cluster_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    # The chart sets CLUSTER_DOMAIN from its `clusterDomain`.
    monkeypatch.setenv("CLUSTER_DOMAIN", "corp.example")
    get_settings.cache_clear()
    try:
        settings = get_settings()
    finally:
        get_settings.cache_clear()
    spec = {"service": {"name": "greeter", "port": 9080}}
    assert endpoint_for(settings, "ns", spec, "abc") == (
        "http://greeter.ns.svc.corp.example:9080/rev-abc"
    )
    with pytest.raises(ValueError):
        Settings(cluster_domain="http://x/")


def test_backoff_is_exponential_and_capped() -> None:
    get_settings.cache_clear()
    assert [backoff(n) for n in (1, 2, 3, 4, 7, 100)] == [1, 2, 4, 8, 60, 60]


def test_an_unreachable_admin_api_is_retried_every_few_seconds() -> None:
    # Restate starting (or restarting): retry soon, so registration follows its readiness.
    get_settings.cache_clear()
    unreachable = [failure_delay(Reason.ADMIN_API_UNREACHABLE, n) for n in (1, 2, 3, 10, 100)]
    assert unreachable == [1, 2, 2, 2, 2]
    # A refusal (bad spec, discovery failed) still backs off toward a minute.
    assert failure_delay(Reason.ADMIN_API_REJECTED, 7) == 60


def test_condition_transition_time_moves_only_on_flips() -> None:
    first = ready_condition(True, Reason.REGISTERED, "ok", 1, [])
    again = ready_condition(True, Reason.ROLLOUT_IN_PROGRESS, "rolling", 2, first)
    assert again[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert again[0]["reason"] == "RolloutInProgress" and again[0]["observedGeneration"] == 2


def test_entry_point_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_NAMESPACE", "apps")
    get_settings.cache_clear()
    try:
        args = entry.kopf_args()
    finally:
        get_settings.cache_clear()
    assert args[:2] == ["run", "--standalone"]
    assert args[args.index("--namespace") :][:2] == ["--namespace", "apps"]
    assert "http://0.0.0.0:8080/healthz" in args
