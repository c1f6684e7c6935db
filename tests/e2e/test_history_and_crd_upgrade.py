"""On real pods (issue 16): the chart of an earlier commit of this repository, whose
RestateWorkload CRD lacks `revisionHistoryLimit`, is installed with a SignupWorkflow run
suspended on its promise (pinned); then `helm upgrade` to the current chart, which sets
that new field. The CRD hook applies the new schema first: the field is kept (not pruned),
the pinned run completes after its click, the example keeps answering. Then a rollout, the
old version drained into the revision history (scaled to 0, its Restate deployment kept), and
a rollback within the history: the same Restate deployment serves again (measured: from the
`helm upgrade` to a new run on the old deployment).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.test_rollouts import (
    CHART,
    SMALL,
    Release,
    Workload,
    connected,
    settled,
    uninstall,
    version_of,
)

from localcluster.controlplane import REPO_ROOT
from plugins.measured import record
from plugins.real_cluster import RealCluster
from testkit.processes import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

NAMESPACE = "crd-upgrade-e2e"
RELEASE = "crdup"
WORKLOAD = f"{RELEASE}-restate-examples-signup-workflow"
DRAIN_DELAY = 10
HISTORY = 3
CRD_FILE = "deploy/helm/restate-examples/crds/restateworkloads.yaml"


def earlier_chart(into: Path) -> tuple[str, Path]:
    """The chart of the commit before `revisionHistoryLimit` entered the CRD."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    added = git("log", "--format=%H", "-S", "revisionHistoryLimit", "--", CRD_FILE).split()[-1]
    commit = git("rev-parse", f"{added}^")
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", commit, "deploy/helm/restate-examples"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    chart = into / "deploy/helm/restate-examples"
    assert "revisionHistoryLimit" not in (chart / "crds/restateworkloads.yaml").read_text()
    return commit, chart


@pytest.fixture(scope="module")
def old_release(
    real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Release]]:
    commit, chart = earlier_chart(tmp_path_factory.mktemp("earlier"))
    uninstall(real_cluster, NAMESPACE, RELEASE)
    # CRDs are cluster-wide: the current ones may be there from another test; the earlier
    # chart's install would keep them. Start from the earlier schema, as a user would have it.
    real_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                         str(chart / "crds/restateworkloads.yaml"))  # fmt: skip
    real_cluster.helm(
        "install", RELEASE, str(chart), "--namespace", NAMESPACE, "--create-namespace",
        "--wait", "--timeout", "10m", *real_cluster.cluster_values, *SMALL,
        "--set", f"examples.signupWorkflow.registration.drainDelaySeconds={DRAIN_DELAY}",
    )  # fmt: skip
    try:
        with connected(real_cluster, NAMESPACE, RELEASE) as release:
            Workload(release, WORKLOAD).wait(settled, 300, "the signup example registered")
            yield commit, release
    finally:
        uninstall(real_cluster, NAMESPACE, RELEASE)
        # Leave the current CRD for the other tests.
        real_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                             str(REPO_ROOT / CRD_FILE))  # fmt: skip


def upgrade(rel: Release, *sets: str) -> float:
    """helm upgrade to the current chart (new defaults, then the release's values); seconds."""
    args = ["upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--reset-then-reuse-values", *rel.cluster.cluster_values,
            "--wait", "--timeout", "10m"]  # fmt: skip
    for item in sets:
        args += ["--set", item]
    started = time.monotonic()
    rel.cluster.helm(*args)
    # A chart that changes Restate's settings restarts its pod (the earlier chart gave Restate
    # no retry policy); the port-forwards follow the new pod, as a user's would, once asked.
    eventually(lambda: rel.ingress.get("/restate/health").status_code == 200
               and rel.admin.get("/health").status_code == 200,
               120, "Restate's ingress and admin through the port-forwards")  # fmt: skip
    return time.monotonic() - started


def crd_has_the_field(rel: Release) -> bool:
    crd = rel.json("get", "crd", "restateworkloads.examples.restate.dev")
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return "revisionHistoryLimit" in spec["properties"]


def signup(rel: Release, w: Workload, version: str) -> tuple[str, str]:
    user = f"u-{uuid.uuid4().hex[:6]}"
    rel.start_signup(user)
    return user, rel.secret(user, w.selector(version))


def complete(rel: Release, user: str, secret: str) -> dict[str, Any]:
    rel.click(user, secret)
    assert rel.ingress.get(f"/restate/workflow/SignupWorkflow/{user}/attach").json() is True
    return rel.run(user)


def test_upgrade_from_an_earlier_chart_keeps_new_fields_and_pinned_runs_then_history(
    old_release: tuple[str, Release],
) -> None:
    commit, rel = old_release
    w = Workload(rel, WORKLOAD)
    first = w.status()
    v1, v1_id = first["currentVersion"], first["deploymentId"]
    assert not crd_has_the_field(rel)
    user, secret = signup(rel, w, v1)
    eventually(lambda: rel.run(user).get("pinned_deployment_id") == v1_id, 60, "pinned to v1")

    # The upgrade to this chart, which sets the field the earlier CRD lacks.
    took = upgrade(rel, f"examples.signupWorkflow.registration.revisionHistoryLimit={HISTORY}")
    record(f"helm upgrade from {commit[:10]} (s)", round(took, 1))
    assert crd_has_the_field(rel)
    spec = rel.json("get", "rwl", WORKLOAD)["spec"]
    assert spec.get("revisionHistoryLimit") == HISTORY, spec  # kept, not pruned
    run = complete(rel, user, secret)
    assert run["status"] == "completed" and run["pinned_deployment_id"] == v1_id, run
    assert not run.get("last_failure"), run
    after = w.wait(settled, 300, "settled after the upgrade")
    current, current_id = after["currentVersion"], after["deploymentId"]
    answered = complete(rel, *signup(rel, w, current))  # the example keeps answering
    assert answered["pinned_deployment_id"] == current_id, answered

    # A rollout (a new pod template), the old version drained into the history.
    upgrade(rel, "examples.signupWorkflow.podAnnotations.example\\.com/rollout=b")
    rolled = w.wait(
        lambda s: s["currentVersion"] != current
        and version_of(s, current).get("state") == "Retired",
        DRAIN_DELAY + 120,
        "the previous version in the revision history",
    )  # fmt: skip
    drained_at = version_of(rolled, current)
    assert w.replicasets()[current] == 0 and current_id in rel.deployments()
    record("drained -> retired (status stamps, s)", _seconds(drained_at))

    # Rollback within the history: scaled up, the same Restate deployment the latest again.
    started = time.monotonic()
    upgrade(rel, "examples.signupWorkflow.podAnnotations.example\\.com/rollout=null")
    back = w.wait(lambda s: s["currentVersion"] == current, 120, "rolled back")
    assert back["deploymentId"] == current_id
    user2, secret2 = signup(rel, w, current)
    run2 = complete(rel, user2, secret2)
    record("rollback within the history: helm upgrade -> a new run served by the old "
           "deployment (s)", round(time.monotonic() - started, 1))  # fmt: skip
    assert run2["pinned_deployment_id"] == current_id, run2
    assert "RolledBack" in {e[1] for e in w.events()}


def _seconds(entry: dict[str, Any]) -> float | None:
    from restate_operator import clock

    start, end = clock.parse(entry.get("drainedAt")), clock.parse(entry.get("retiredAt"))
    return None if start is None or end is None else round((end - start).total_seconds(), 1)
