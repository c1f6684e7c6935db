"""Pause and explain, against the real API server (kwok runs the pods) and a real
restate-server: the annotation examples.restate.dev/reconcile=disabled freezes one
RestateWorkload (a spec change while paused changes nothing, and is applied once the annotation
goes); a deletion that drains says in status what it waits on."""

from __future__ import annotations

import time

import httpx
import pytest
from operator_tests.support import (
    DRIFT_SECONDS,
    OperatorEnv,
    eventually,
    ready_reason,
    start_signup,
)

from restate_operator import clock

pytestmark = pytest.mark.kube
PAUSE = "examples.restate.dev/reconcile"


def annotate(env: OperatorEnv, name: str, value: str | None) -> None:
    env.patch_workload(name, {"metadata": {"annotations": {PAUSE: value}}})


def test_a_paused_workload_changes_nothing_until_resumed(env: OperatorEnv) -> None:
    _, first = env.registered_workload(
        "user-object", "greeter", drainDelaySeconds=0, revisionHistoryLimit=0
    )
    v1, id1 = first["currentVersion"], first["deploymentId"]

    annotate(env, "greeter", "disabled")
    paused = env.wait_workload("greeter", lambda s: s.get("paused") is True, 30, "paused")
    condition = next(c for c in paused["conditions"] if c["type"] == "Paused")
    assert condition["status"] == "True" and PAUSE in condition["message"]
    env.set_workload_version("greeter", "v2")
    env.kube.kubectl("scale", "-n", env.namespace, "rwl/greeter", "--replicas=2")
    time.sleep(3 * DRIFT_SECONDS)  # several drift intervals: nothing may happen meanwhile
    assert env.replicasets("greeter") == {v1: 1}
    assert [d["id"] for d in env.restate_deployments()] == [id1]
    assert env.workload_status("greeter")["desiredVersion"] == v1
    eventually(  # kopf posts events in the background
        lambda: ("Normal", "Paused") in [e[:2] for e in env.events("greeter")],
        10,
        "the Paused event",
    )

    annotate(env, "greeter", None)  # resumed: the change made while paused is applied
    done = env.wait_workload(
        "greeter",
        lambda s: ready_reason(s) == "Registered" and s["currentVersion"] != v1
        and s["drainingVersions"] == 0 and s.get("readyReplicas") == 2,
        60,
        "v2 applied after the pause",
    )  # fmt: skip
    assert "paused" not in done
    assert env.replicasets("greeter") == {done["currentVersion"]: 2}
    assert [d["id"] for d in env.restate_deployments()] == [done["deploymentId"]]


def test_a_draining_deletion_says_what_it_waits_on(env: OperatorEnv) -> None:
    signup, first = env.registered_workload("signup-workflow", "signup", drainTimeoutSeconds=120)
    secret = start_signup(env, signup, "pinned")
    env.custom.delete_namespaced_custom_object(
        "examples.restate.dev", "v1alpha1", env.namespace, "restateworkloads", "signup"
    )
    status = env.wait_workload(
        "signup", lambda s: (s.get("deletion") or {}).get("waitingOn"), 30, "deletion status"
    )
    deletion = status["deletion"]
    assert deletion["waitingOn"] == [
        {"deploymentId": first["deploymentId"], "version": first["currentVersion"],
         "pinnedInvocations": 1}
    ]  # fmt: skip
    assert deletion["policy"] == "Drain" and deletion["pinnedInvocations"] == 1
    deleted_at = env.workload("signup")["metadata"]["deletionTimestamp"]
    assert clock.parse(deletion["forceAt"]) == clock.parse(clock.later(deleted_at, 120))
    # The pinned run completes: nothing to wait on, the deletion finishes.
    base = env.server.ingress_url
    answer = httpx.post(f"{base}/SignupWorkflow/pinned/click", json=secret, timeout=30)
    assert answer.status_code == 200, answer.text
    eventually(lambda: env.workload_gone("signup"), 30, "deleted once drained")
    assert env.restate_deployments() == []
