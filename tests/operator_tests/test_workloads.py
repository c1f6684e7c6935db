"""RestateWorkload against a real control plane (kwok runs the pods), a real restate-server and
a real service process: versions with their own ReplicaSet and Service, drain of the
invocations pinned to an old version, removal after the drain delay, rollback while draining
and after removal, scale, restart, an admin API outage mid-rollout, deletion policies.

(All versions reach the one service process here; that old code really serves its pinned
invocations is proven on real pods by tests/e2e/test_rollouts.py.)"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiException
from operator_tests.support import (
    OperatorEnv,
    click,
    eventually,
    ready_reason,
    start_signup,
    version_of,
)

from plugins.measured import record

pytestmark = pytest.mark.kube


def current(status: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in status.get("versions", []) if v["state"] == "Current")


def registered(status: dict[str, Any]) -> bool:
    return ready_reason(status) == "Registered"


def event_reasons(env: OperatorEnv, name: str) -> list[tuple[str | None, str | None]]:
    return [e[:2] for e in env.events(name)]


def metric(env: OperatorEnv, pattern: str) -> float:
    found = re.search(pattern + r" (\S+)", env.operator.metrics())
    return float(found.group(1)) if found else 0.0


def test_rollout_drains_the_old_version_then_removes_it_and_rolls_back(
    env: OperatorEnv,
) -> None:
    # No revision history here: a drained version goes (test_revision_history.py keeps them).
    signup, first = env.registered_workload(
        "signup-workflow", "signup", drainDelaySeconds=3, revisionHistoryLimit=0
    )
    v1 = first["currentVersion"]
    v1_id = first["deploymentId"]
    assert env.replicasets("signup") == {v1: 1}
    assert env.version_services("signup") == {f"signup-{v1}"}
    assert first["endpoint"] == f"http://127.0.0.1:{signup.port}/signup-{v1}"
    assert f"examples.restate.dev/version={v1}" in first["selector"].split(",")
    assert current(first)["services"] == ["SignupWorkflow"]
    rs = env.plain(env.apps.read_namespaced_replica_set(f"signup-{v1}", env.namespace))
    owner = rs["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == (
        "RestateWorkload",
        "signup",
        True,
    )
    assert env.restate_deployments() == [{"id": v1_id, "endpoint": first["endpoint"]}]

    # A workflow waits for its click: pinned to version 1.
    secret = start_signup(env, signup, "pinned-user")

    # Rollout: version 2 is registered; version 1 keeps its pods while the run is pinned.
    env.set_workload_version("signup", "v2")
    second = env.wait_workload(
        "signup",
        lambda s: registered(s) and s["currentVersion"] != v1 and s["drainingVersions"] == 1,
        60,
        "version 2 current, version 1 draining",
    )
    v2 = second["currentVersion"]
    old = version_of(second, v1)
    assert old and old["state"] == "Draining" and old["drainingSince"]
    eventually(
        lambda: version_of(env.workload_status("signup"), v1).get("pinnedInvocations") == 1,
        20,
        "one invocation pinned to version 1",
    )
    assert env.replicasets("signup") == {v1: 1, v2: 1}
    assert env.latest() == {"SignupWorkflow": second["deploymentId"]}
    table = env.kube.kubectl("get", "rwl", "-n", env.namespace).stdout
    record("kubectl get rwl", "\n" + table)
    assert "CURRENT" in table and "DRAINING" in table and v2 in table
    assert re.search(rf"signup\s+{v2}\s+1\s+0\s+True", table), table  # draining 1, history 0

    # kubectl scale: only the current version.
    env.kube.kubectl("scale", "-n", env.namespace, "rwl/signup", "--replicas=3")
    eventually(lambda: env.replicasets("signup") == {v1: 1, v2: 3}, 30, "version 2 scaled")
    env.wait_workload("signup", lambda s: s.get("readyReplicas") == 3, 30, "3 ready")
    time.sleep(4)  # longer than the drain delay: still pinned, still there
    assert env.replicasets("signup") == {v1: 1, v2: 3}
    assert {d["id"] for d in env.restate_deployments()} == {v1_id, second["deploymentId"]}

    # The click completes the run; after the drain delay version 1 is gone everywhere.
    click(env, "pinned-user", secret)
    completed = time.monotonic()
    env.wait_workload("signup", lambda s: s["drainingVersions"] == 0, 30, "version 1 removed")
    record("last pinned invocation completed -> version removed (s, delay 3)",
           round(time.monotonic() - completed, 1))  # fmt: skip
    assert env.replicasets("signup") == {v2: 3}
    assert env.version_services("signup") == {f"signup-{v2}"}
    assert [d["id"] for d in env.restate_deployments()] == [second["deploymentId"]]
    reasons = event_reasons(env, "signup")
    for step in ("VersionCreated", "Registered", "Draining", "Drained", "VersionRemoved", "Scaled"):
        assert ("Normal", step) in reasons, (step, reasons)
    assert metric(env, r"restate_operator_drain_duration_seconds_count") == 1
    assert metric(env, r"restate_operator_ready_to_registered_seconds_count") >= 2
    assert metric(env, r'restate_operator_workload_versions\{state="Current"\}') == 1
    assert 'restate_operator_admin_api_calls_total{operation="POST /deployments",outcome="ok"}' in (
        env.operator.metrics()
    )
    assert "restate_operator_reconcile_duration_seconds_bucket" in env.operator.metrics()

    # Rollback after version 1 is gone: registered anew (a new Restate deployment).
    secret2 = start_signup(env, signup, "pinned-user-2")  # pinned to version 2
    env.set_workload_version("signup", "v1")
    back = env.wait_workload(
        "signup", lambda s: registered(s) and s["currentVersion"] == v1, 60, "rolled back to v1"
    )
    assert back["deploymentId"] != v1_id
    assert version_of(back, v2).get("state") == "Draining"
    assert env.replicasets("signup") == {v1: 3, v2: 3}

    # Rollback while version 2 still drains: its ReplicaSet is there, it becomes the latest
    # again under the same Restate deployment (re-registered with force): no duplicate.
    env.set_workload_version("signup", "v2")
    again = env.wait_workload(
        "signup", lambda s: registered(s) and s["currentVersion"] == v2, 60, "back to v2"
    )
    assert again["deploymentId"] == second["deploymentId"]
    assert env.latest() == {"SignupWorkflow": second["deploymentId"]}
    assert ("Normal", "RolledBack") in event_reasons(env, "signup")
    # Version 1 (nothing pinned) goes after its delay; the run pinned to version 2 completes.
    env.wait_workload("signup", lambda s: s["drainingVersions"] == 0, 30, "v1 removed again")
    assert [d["id"] for d in env.restate_deployments()] == [second["deploymentId"]]
    click(env, "pinned-user-2", secret2)
    record("operator_rss_mib", round(env.operator.rss_bytes() / 2**20, 1))

    # The operator's identity has exactly the chart's rules: nothing wider.
    with env.kube.as_service_account(env.namespace, "restate-operator") as api:
        with pytest.raises(ApiException) as denied:
            k8s.AppsV1Api(api).delete_namespaced_deployment("anything", env.namespace)
        assert denied.value.status == 403
        with pytest.raises(ApiException) as secret_denied:
            k8s.CoreV1Api(api).list_namespaced_secret(env.namespace)
        assert secret_denied.value.status == 403
    log = env.operator.process.log_text()
    assert "Forbidden" not in log and "reconciliation failed" not in log


def test_admin_api_outage_mid_rollout_waits_then_completes(env: OperatorEnv) -> None:
    _, first = env.registered_workload(
        "user-object", "greeter", drainDelaySeconds=0, revisionHistoryLimit=0
    )
    env.server.stop()
    env.set_workload_version("greeter", "v2")
    down = env.wait_workload(
        "greeter", lambda s: ready_reason(s) == "AdminApiUnreachable", 30, "the outage reported"
    )
    time.sleep(5)  # the rollout waits: version 2's pods are up, nothing else changes
    down = env.workload_status("greeter")
    assert down["currentVersion"] == first["currentVersion"]
    assert version_of(down, down["desiredVersion"]).get("state") == "Pending"
    assert len(env.replicasets("greeter")) == 2
    assert ("Warning", "AdminApiUnreachable") in event_reasons(env, "greeter")
    env.server.start()
    back = time.monotonic()
    done = env.wait_workload(
        "greeter",
        lambda s: registered(s) and s["currentVersion"] != first["currentVersion"]
        and s["drainingVersions"] == 0,
        30,
        "the rollout completed after the outage",
    )  # fmt: skip
    record("rollout completed after Restate came back (s)", round(time.monotonic() - back, 1))
    assert env.replicasets("greeter") == {done["currentVersion"]: 1}
    assert [d["id"] for d in env.restate_deployments()] == [done["deploymentId"]]
    assert 'outcome="unreachable"' in env.operator.metrics()


def test_restart_annotation_keeps_the_version(env: OperatorEnv) -> None:
    _, first = env.registered_workload("user-object", "greeter", replicas=2)

    def pods() -> set[str]:
        items = env.plain(
            env.core.list_namespaced_pod(
                env.namespace, label_selector="examples.restate.dev/workload=greeter"
            )
        )["items"]
        return {p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp")}

    eventually(lambda: len(pods()) == 2, 30, "two pods")
    before = pods()
    template = env.workload("greeter")["spec"]["template"]
    template["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "now"}
    env.patch_workload("greeter", {"spec": {"template": template}})
    eventually(lambda: len(pods()) == 2 and not pods() & before, 60, "both pods replaced")
    status = env.wait_workload("greeter", registered, 30, "registered")
    assert status["currentVersion"] == first["currentVersion"]
    assert status["deploymentId"] == first["deploymentId"]
    assert len(env.restate_deployments()) == 1
    assert ("Normal", "Restarting") in event_reasons(env, "greeter")


def test_deletion_drains_then_forces_and_takes_the_pods_along(env: OperatorEnv) -> None:
    signup, first = env.registered_workload("signup-workflow", "signup", drainTimeoutSeconds=4)
    start_signup(env, signup, "never-clicks")
    env.custom.delete_namespaced_custom_object(
        "examples.restate.dev", "v1alpha1", env.namespace, "restateworkloads", "signup"
    )
    env.wait_workload("signup", lambda s: ready_reason(s) == "Draining", 30, "draining on deletion")
    assert env.replicasets("signup") == {first["currentVersion"]: 1}  # still serving
    eventually(lambda: env.workload_gone("signup"), 30, "deleted after the drain timeout")
    assert env.restate_deployments() == []
    eventually(lambda: env.replicasets("signup") == {}, 30, "the ReplicaSet collected")
    eventually(lambda: env.version_services("signup") == set(), 30, "the Service collected")
    assert ("Warning", "DrainTimeout") in event_reasons(env, "signup")


def test_invalid_workloads_are_rejected(env: OperatorEnv) -> None:
    base = {"selector": {"matchLabels": {"app": "x"}}, "template": {}}
    bad: list[dict[str, Any]] = [
        {"template": {}},  # no selector
        {**base, "replicas": -1},
        {**base, "deletionPolicy": "Later"},
        {**base, "port": 0},
    ]
    for i, spec in enumerate(bad):
        body = {"apiVersion": "examples.restate.dev/v1alpha1", "kind": "RestateWorkload",
                "metadata": {"name": f"bad-{i}"}, "spec": spec}  # fmt: skip
        with pytest.raises(ApiException) as rejected:
            env.custom.create_namespaced_custom_object(
                "examples.restate.dev", "v1alpha1", env.namespace, "restateworkloads", body
            )
        assert rejected.value.status == 422, spec
    env.create_workload("defaults", 9080)
    spec = env.workload("defaults")["spec"]
    assert (spec["replicas"], spec["drainDelaySeconds"], spec["deletionPolicy"]) == (
        1, 300, "Drain",
    )  # fmt: skip
    assert spec["revisionHistoryLimit"] == 10
    with pytest.raises(ApiException) as immutable:
        env.patch_workload("defaults", {"spec": {"selector": {"matchLabels": {"app": "y"}}}})
    assert immutable.value.status == 422
