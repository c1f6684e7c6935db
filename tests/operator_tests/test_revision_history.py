"""RestateWorkload's revision history against the real API server (kwok runs the pods) and a
real restate-server: a drained version is scaled to 0 and kept with its Service and Restate
deployment; a rollback to it scales it back up and makes the SAME Restate deployment the
latest again; past revisionHistoryLimit the oldest goes, its Restate deployment first."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from operator_tests.support import OperatorEnv, eventually, ready_reason, version_of

from plugins.measured import record

pytestmark = pytest.mark.kube


def deployment_ids(env: OperatorEnv) -> set[str]:
    return {d["id"] for d in env.restate_deployments()}


def to(env: OperatorEnv, label: str, history: int) -> dict[str, Any]:
    """Sets the template's VERSION; waits until that version is current, nothing draining and
    `history` versions in the history."""
    env.set_workload_version("greeter", label)
    generation = env.workload("greeter")["metadata"]["generation"]
    return env.wait_workload(
        "greeter",
        lambda s: ready_reason(s) == "Registered"
        and s.get("observedGeneration") == generation
        and s["currentVersion"] == s["desiredVersion"]
        and s["drainingVersions"] == 0
        and s.get("historyVersions") == history,
        60,
        f"{label} current with {history} version_of(s) in the history",
    )  # fmt: skip


def test_rollback_within_the_history_reuses_the_deployment_and_the_limit_trims(
    env: OperatorEnv,
) -> None:
    _, first = env.registered_workload(
        "user-object", "greeter", drainDelaySeconds=0, revisionHistoryLimit=2
    )
    v1, id1 = first["currentVersion"], first["deploymentId"]

    # v2: v1 drained (nothing pinned, no delay): scaled to 0, kept with its Restate deployment.
    second = to(env, "v2", 1)
    v2, id2 = second["currentVersion"], second["deploymentId"]
    assert second["history"] == [v1]
    assert (
        version_of(second, v1)["state"] == "Retired"
        and version_of(second, v1)["deploymentId"] == id1
    )
    assert env.replicasets("greeter") == {v1: 0, v2: 1}
    assert env.version_services("greeter") == {f"greeter-{v1}", f"greeter-{v2}"}
    assert deployment_ids(env) == {id1, id2}
    assert env.latest() == {"GreeterObject": id2}
    table = env.kube.kubectl("get", "rwl", "-n", env.namespace).stdout
    record("kubectl get rwl", "\n" + table)
    assert "HISTORY" in table and re.search(rf"greeter\s+{v2}\s+0\s+1\s+True", table), table

    # Rollback to v1: scaled back up, the same Restate deployment made the latest again.
    started = time.monotonic()
    back = to(env, "v1", 1)
    record("rollback within the history: spec change -> same deployment latest (s)",
           round(time.monotonic() - started, 1))  # fmt: skip
    assert back["currentVersion"] == v1 and back["deploymentId"] == id1
    assert env.latest() == {"GreeterObject": id1}
    assert deployment_ids(env) == {id1, id2}  # no new deployment
    assert env.replicasets("greeter") == {v1: 1, v2: 0} and back["history"] == [v2]
    answer = httpx.post(f"{env.server.ingress_url}/GreeterObject/ann/greet", json="Hi", timeout=30)
    assert answer.status_code == 200, answer.text
    eventually(
        lambda: (
            {("Normal", "Retired"), ("Normal", "RolledBack")}
            <= {e[:2] for e in env.events("greeter")}
        ),
        10,
        "the Retired and RolledBack events",
    )

    # v3 then v4: three drained versions, limit 2: the oldest in the history (v2) goes.
    third = to(env, "v3", 2)
    v3 = third["currentVersion"]
    assert third["history"] == [v1, v2]
    fourth = to(env, "v4", 2)
    v4, id4 = fourth["currentVersion"], fourth["deploymentId"]
    assert fourth["history"] == [v3, v1]
    assert id2 not in deployment_ids(env)
    assert deployment_ids(env) == {id1, third["deploymentId"], id4}
    assert env.replicasets("greeter") == {v1: 0, v3: 0, v4: 1}
    assert env.version_services("greeter") == {f"greeter-{v}" for v in (v1, v3, v4)}
    removed = eventually(  # kopf posts events in the background
        lambda: [e for e in env.events("greeter") if e[1] == "VersionRemoved"],
        10,
        "the VersionRemoved event",
    )
    assert len(removed) == 1 and "past revisionHistoryLimit 2" in str(removed[0][2])
    assert id2 in str(removed[0][2])
