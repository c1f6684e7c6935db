"""Versioned, drain-aware rollouts on real pods (issue 10): old code keeps serving the
invocations pinned to it.

The chart is installed with only the signup example (Restate, the operator, one
RestateWorkload). A `SignupWorkflow/run` suspends on its promise; then the example is rolled
out (``helm upgrade``) to an image built here, whose `run` has a step added before the promise:
code that cannot replay the suspended run's journal. New runs go to the new version; the click
resumes the old run on the old pods, where it completes; after the drain delay the old
version's Restate deployment, ReplicaSet and Service are gone. The same scenario against the
previous design (a RestateRegistration following a plain Deployment) shows the journal
mismatch: the test can fail. Also: ``kubectl scale`` while a version drains, rollbacks while
the previous version drains and after it is gone, and an admin API outage mid-rollout.

The incompatible image is built FROM the example's image with the engine the cluster's images
come from, and delivered the same way (``RealCluster.images``: docker and ``kind load`` on
kind, podman and the node's containerd on the local node, a push under
RESTATE_EXAMPLES_IMAGE_PREFIX for a given kubeconfig).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from localcluster.controlplane import REPO_ROOT
from plugins.measured import record
from plugins.real_cluster import RealCluster
from testkit.processes import eventually
from testkit.restate import query

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

NAMESPACE = "rollout-e2e"
RELEASE = "rollout"
FULLNAME = f"{RELEASE}-restate-examples"
WORKLOAD = f"{FULLNAME}-signup-workflow"
LEGACY_NAMESPACE = "rollout-legacy"
LEGACY_RELEASE = "legacy"
CHART = REPO_ROOT / "deploy" / "helm" / "restate-examples"
INCOMPATIBLE_TAG = "incompatible"
TARGET = "signup-workflow"
DRAIN_DELAY = 10
# Only Restate, the operator and the signup example; small requests (2 shared cores).
SMALL = [
    "--set", "examples.subscriptions.enabled=false",
    "--set", "examples.buildingBlocks.enabled=false",
    "--set", "examples.userObject.enabled=false",
    "--set", "tests.enabled=false",
    "--set", "restate.resources.requests.cpu=100m",
    "--set", "restate.resources.requests.memory=512Mi",
    "--set", "operator.uninstall.drainSeconds=5",
]  # fmt: skip

# The new code: one more durable step before the promise. A run suspended on the promise by
# the old code cannot be replayed by it (Restate: journal mismatch).
PATCH = r"""
import pathlib
import signup_workflow.service as service

path = pathlib.Path(service.__file__)
text = path.read_text()
old = "    # Wait for the durable promise"
assert old in text
step = (
    "    await ctx.run_typed('incompatible step', _incompatible_step, user_id=user_id)\n"
)
helper = (
    "\n\nasync def _incompatible_step(user_id: str) -> None:\n"
    "    import sys\n"
    "    print(f'INCOMPATIBLE STEP for {user_id}', file=sys.stderr, flush=True)\n"
)
path.write_text(text.replace(old, step + old, 1) + helper)
"""


# ----------------------------------------------------------------------------- helpers


def build_incompatible_image(cluster: RealCluster, workdir: Path) -> str:
    """FROM the example's image, with `run` patched; built and delivered to the nodes the way
    the cluster's own images are (one code path: ``ClusterImages.add``)."""
    assert cluster.images is not None
    context = workdir / "incompatible"
    context.mkdir(exist_ok=True)
    (context / "patch.py").write_text(PATCH)
    (context / "Dockerfile").write_text(
        f"FROM {cluster.images.ref(TARGET)}\n"
        "USER 0\n"
        "COPY patch.py /tmp/patch.py\n"
        "RUN python /tmp/patch.py && rm /tmp/patch.py\n"
        "USER 10001:10001\n"
    )
    return cluster.images.add(
        context, TARGET, INCOMPATIBLE_TAG, workdir, file=context / "Dockerfile"
    )


@dataclass
class Release:
    """One installed release and the ways in (port-forwards to Restate's ingress and admin)."""

    cluster: RealCluster
    namespace: str
    release: str
    ingress: httpx.Client
    admin: httpx.Client

    @property
    def fullname(self) -> str:
        return f"{self.release}-restate-examples"

    def json(self, *args: str) -> Any:
        return json.loads(self.cluster.kubectl("-n", self.namespace, *args, "-o", "json"))

    def query(self, sql: str) -> list[dict[str, Any]]:
        return query(self.admin, sql)

    def run(self, key: str) -> dict[str, Any]:
        rows = self.query(
            "SELECT id, status, pinned_deployment_id, last_attempt_deployment_id, last_failure, "
            "last_failure_error_code, retry_count FROM sys_invocation "
            f"WHERE target_service_key = '{key}' AND target_handler_name = 'run'"
        )
        return rows[0] if rows else {}

    def deployments(self) -> set[str]:
        return {r["id"] for r in self.query("SELECT id FROM sys_deployment")}

    def start_signup(self, user: str) -> str:
        sent = self.ingress.post(
            f"/SignupWorkflow/{user}/run/send", json={"name": "Bob", "email": "bob@builder.com"}
        )
        assert sent.status_code in (200, 202), sent.text
        invocation: str = sent.json()["invocationId"]
        return invocation

    def logs(self, selector: str) -> str:
        return self.cluster.kubectl(
            "-n", self.namespace, "logs", "-l", selector, "--tail=-1", "--max-log-requests=20"
        )

    def secret(self, user: str, selector: str) -> str:
        pattern = re.compile(rf"/verify/{user}\?secret=([0-9a-zA-Z-]+)")
        found: str = eventually(
            lambda: m.group(1) if (m := pattern.search(self.logs(selector))) else None,
            90,
            f"the verification email to {user}",
        )
        return found

    def click(self, user: str, secret: str) -> None:
        answer = self.ingress.post(f"/SignupWorkflow/{user}/click", json=secret)
        assert answer.status_code == 200, answer.text

    def helm_upgrade(self, *sets: str, wait: bool = True) -> None:
        args = ["upgrade", self.release, str(CHART), "--namespace", self.namespace,
                "--reuse-values", *self.cluster.cluster_values]  # fmt: skip
        for item in sets:
            args += ["--set", item]
        if wait:
            args += ["--wait", "--timeout", "10m"]
        self.cluster.helm(*args)


@dataclass
class Workload:
    """The signup example's RestateWorkload, read with kubectl."""

    rel: Release
    name: str = WORKLOAD

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.rel.json("get", "rwl", self.name).get("status") or {}
        return status

    def wait(self, check: Callable[[dict[str, Any]], Any], timeout: float, what: str) -> Any:
        try:
            return eventually(lambda: (s := self.status()) and check(s) and s, timeout, what)
        except TimeoutError as error:
            events = "".join(f"\n  {t} {r}: {m}" for t, r, m in self.events())
            raise AssertionError(f"{error}\nstatus: {json.dumps(self.status())}{events}") from None

    def replicasets(self) -> dict[str, int]:
        items = self.rel.json("get", "rs", "-l", f"examples.restate.dev/workload={self.name}")
        return {
            rs["metadata"]["labels"]["examples.restate.dev/version"]: rs["spec"]["replicas"]
            for rs in items["items"]
        }

    def services(self) -> set[str]:
        items = self.rel.json("get", "svc", "-l", f"examples.restate.dev/workload={self.name}")
        return {s["metadata"]["name"] for s in items["items"]}

    def events(self) -> list[tuple[str, str, str]]:
        items = self.rel.json(
            "get", "events", "--field-selector", f"involvedObject.name={self.name}"
        )["items"]
        return [(e["type"], e["reason"], e["message"]) for e in items]

    def selector(self, version: str) -> str:
        return f"examples.restate.dev/workload={self.name},examples.restate.dev/version={version}"


def version_of(status: dict[str, Any], hash_: str) -> dict[str, Any]:
    found: dict[str, Any] = next((v for v in status.get("versions", []) if v["hash"] == hash_), {})
    return found


def settled(status: dict[str, Any]) -> bool:
    """Ready, the spec's version current, nothing draining."""
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )
    return (
        ready
        and status.get("currentVersion") == status.get("desiredVersion")
        and status.get("drainingVersions") == 0
    )


def install(cluster: RealCluster, namespace: str, release: str, *extra: str) -> None:
    cluster.helm(
        "install", release, str(CHART), "--namespace", namespace, "--create-namespace",
        "--wait", "--timeout", "10m", *cluster.cluster_values, *SMALL, *extra,
    )  # fmt: skip


@contextlib.contextmanager
def connected(cluster: RealCluster, namespace: str, release: str) -> Iterator[Release]:
    restate = f"svc/{release}-restate-examples-restate"
    with (
        cluster.port_forward(namespace, restate, 8080) as ingress_url,
        cluster.port_forward(namespace, restate, 9070) as admin_url,
        httpx.Client(base_url=ingress_url, timeout=120) as ingress,
        httpx.Client(base_url=admin_url, timeout=30) as admin,
    ):
        yield Release(cluster, namespace, release, ingress, admin)


def uninstall(cluster: RealCluster, namespace: str, release: str) -> None:
    cluster.helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "5m",
                 check=False)  # fmt: skip
    cluster.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=180s",
                    check=False)  # fmt: skip


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster(real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> RealCluster:
    if real_cluster.images is None:
        pytest.skip(f"the rollout tests build an image of their own: {real_cluster.images_missing}")
    build_incompatible_image(real_cluster, tmp_path_factory.mktemp("images"))
    return real_cluster


@pytest.fixture(scope="module")
def rel(cluster: RealCluster) -> Iterator[Release]:
    uninstall(cluster, NAMESPACE, RELEASE)  # a run that was interrupted
    install(
        cluster, NAMESPACE, RELEASE,
        "--set", f"examples.signupWorkflow.registration.drainDelaySeconds={DRAIN_DELAY}",
        # Drained versions go (the revision history: test_history_and_crd_upgrade.py).
        "--set", "examples.signupWorkflow.registration.revisionHistoryLimit=0",
    )  # fmt: skip
    try:
        with connected(cluster, NAMESPACE, RELEASE) as release:
            Workload(release).wait(settled, 300, "the signup example registered")
            yield release
    finally:
        uninstall(cluster, NAMESPACE, RELEASE)


# ----------------------------------------------------------------------------- tests


def test_old_code_serves_the_runs_pinned_to_it(rel: Release) -> None:
    w = Workload(rel)
    first = w.status()
    v1, v1_id = first["currentVersion"], first["deploymentId"]
    assert first["endpoint"] == (
        f"http://{WORKLOAD}-{v1}.{NAMESPACE}.svc.cluster.local:9080"
    )  # the version's own Service, by its DNS name

    # A run suspended on its promise, pinned to version 1.
    alice = f"alice-{uuid.uuid4().hex[:6]}"
    alice_id = rel.start_signup(alice)
    alice_secret = rel.secret(alice, w.selector(v1))
    eventually(
        lambda: (
            rel.run(alice).get("status") == "suspended"
            and rel.run(alice).get("pinned_deployment_id") == v1_id
        ),
        60,
        "alice's run suspended, pinned to version 1",
    )

    # The rollout to code that cannot replay alice's journal, as a user does it.
    rel.helm_upgrade(f"examples.signupWorkflow.image.tag={INCOMPATIBLE_TAG}")
    second = w.wait(
        lambda s: s["currentVersion"] != v1 and version_of(s, v1).get("pinnedInvocations") == 1,
        120,
        "version 2 current, version 1 draining with alice pinned",
    )
    v2, v2_id = second["currentVersion"], second["deploymentId"]
    assert version_of(second, v1)["state"] == "Draining"
    assert w.replicasets() == {v1: 1, v2: 1} and w.services() == {
        f"{WORKLOAD}-{v1}",
        f"{WORKLOAD}-{v2}",
    }
    table = rel.cluster.kubectl("-n", NAMESPACE, "get", "rwl")
    record("kubectl get rwl (rolling out)", "\n" + table)
    assert re.search(rf"{WORKLOAD}\s+{v2}\s+1\s+0\s+True", table), table  # draining 1, history 0

    # kubectl scale: the current version only; the draining one keeps its pods.
    rel.cluster.kubectl("-n", NAMESPACE, "scale", f"rwl/{WORKLOAD}", "--replicas=2")
    w.wait(lambda s: s.get("readyReplicas") == 2, 120, "version 2 at 2 ready replicas")
    assert w.replicasets() == {v1: 1, v2: 2}
    rel.cluster.kubectl("-n", NAMESPACE, "scale", f"rwl/{WORKLOAD}", "--replicas=1")
    eventually(lambda: w.replicasets() == {v1: 1, v2: 1}, 60, "version 2 back to 1")

    # New runs go to the new version (and run its new step).
    bob = f"bob-{uuid.uuid4().hex[:6]}"
    rel.start_signup(bob)
    bob_secret = rel.secret(bob, w.selector(v2))
    eventually(lambda: rel.run(bob).get("pinned_deployment_id") == v2_id, 60, "bob on v2")
    assert f"INCOMPATIBLE STEP for {bob}" in rel.logs(w.selector(v2))

    # The click resumes alice's run on version 1's pods: it completes, no journal mismatch.
    rel.click(alice, alice_secret)
    result = rel.ingress.get(f"/restate/workflow/SignupWorkflow/{alice}/attach")
    completed = time.monotonic()
    assert result.json() is True, result.text
    run = rel.run(alice)
    assert run["status"] == "completed", run
    assert run["pinned_deployment_id"] == v1_id, run
    assert not run.get("last_failure"), run
    assert alice_id not in rel.logs(w.selector(v2))  # the new pods never saw it
    assert f"INCOMPATIBLE STEP for {alice}" not in rel.logs(w.selector(v2))

    # Drained: after the drain delay, version 1 is gone from Restate and from Kubernetes.
    def removed() -> bool:
        return (
            v1 not in w.replicasets()
            and f"{WORKLOAD}-{v1}" not in w.services()
            and v1_id not in rel.deployments()
        )

    eventually(removed, DRAIN_DELAY + 60, "version 1 removed", interval=0.5)
    record(f"last pinned invocation completed -> old version removed (s, drain delay "
           f"{DRAIN_DELAY})", round(time.monotonic() - completed, 1))  # fmt: skip
    final = w.wait(settled, 30, "settled on version 2")
    assert final["currentVersion"] == v2 and [v["hash"] for v in final["versions"]] == [v2]
    reasons = {e[1] for e in w.events()}
    assert {"VersionCreated", "Registered", "Draining", "Drained", "VersionRemoved",
            "Scaled"} <= reasons, reasons  # fmt: skip

    rel.click(bob, bob_secret)
    assert rel.ingress.get(f"/restate/workflow/SignupWorkflow/{bob}/attach").json() is True
    record("events", "".join(f"\n  {t} {r}: {m}" for t, r, m in w.events()))
    _record_operator(rel)


def operator_metrics(rel: Release) -> str:
    """The operator pod's /metrics (a port-forward to its metrics port)."""
    pods = rel.json("get", "pods", "-l", "app.kubernetes.io/component=operator")["items"]
    pod = pods[0]["metadata"]["name"]
    with rel.cluster.port_forward(rel.namespace, f"pod/{pod}", 9090) as url:
        return httpx.get(f"{url}/metrics", timeout=10).text


def operator_errors(rel: Release, reason: str) -> float:
    """restate_operator_reconcile_errors_total for one condition reason (0 before the first)."""
    found = re.search(
        rf'^restate_operator_reconcile_errors_total{{reason="{reason}"}} (\S+)$',
        operator_metrics(rel),
        re.M,
    )
    return float(found.group(1)) if found else 0.0


def _record_operator(rel: Release) -> None:
    """The operator's figures: Ready -> registered (its histogram) and its memory (RSS)."""
    pods = rel.json("get", "pods", "-l", "app.kubernetes.io/component=operator")["items"]
    pod = pods[0]["metadata"]["name"]
    status = rel.cluster.kubectl(
        "-n", rel.namespace, "exec", pod, "--", "python", "-c",
        "print(open('/proc/1/status').read())",
    )  # fmt: skip
    rss = next(line for line in status.splitlines() if line.startswith("VmRSS"))
    record("operator pod RSS (/proc/1/status)", rss.split(":", 1)[1].strip())
    metrics = operator_metrics(rel)
    sums = {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r"^restate_operator_ready_to_registered_seconds_(sum|count) (\S+)$", metrics, re.M
        )
    }
    if sums.get("count"):
        record(
            "version ReplicaSet Ready -> registered (operator histogram, mean s)",
            f"{sums['sum'] / sums['count']:.2f} over {sums['count']:.0f}",
        )


def test_rollback_after_removal_and_while_draining(rel: Release) -> None:
    w = Workload(rel)
    start = w.wait(settled, 60, "settled")
    v2, v2_id = start["currentVersion"], start["deploymentId"]
    carol = f"carol-{uuid.uuid4().hex[:6]}"
    rel.start_signup(carol)
    carol_secret = rel.secret(carol, w.selector(v2))
    eventually(lambda: rel.run(carol).get("pinned_deployment_id") == v2_id, 60, "carol on v2")

    # Back to the original image: its version was removed, so it is created and registered
    # anew (a new Restate deployment); version 2 drains (carol is pinned to it).
    assert rel.cluster.images is not None
    rel.helm_upgrade(f"examples.signupWorkflow.image.tag={rel.cluster.images.tag}")
    back = w.wait(lambda s: s["currentVersion"] != v2, 120, "the original version current")
    v1, v1_new_id = back["currentVersion"], back["deploymentId"]
    assert version_of(back, v2)["state"] == "Draining"
    assert w.replicasets() == {v1: 1, v2: 1}

    # And forward again while version 2 still drains: the same Restate deployment becomes
    # the latest again (re-registered with force), its pods scaled as the spec says.
    rel.helm_upgrade(f"examples.signupWorkflow.image.tag={INCOMPATIBLE_TAG}")
    again = w.wait(lambda s: s["currentVersion"] == v2, 120, "version 2 current again")
    assert again["deploymentId"] == v2_id
    assert "RolledBack" in {e[1] for e in w.events()}
    latest = rel.query("SELECT deployment_id FROM sys_service WHERE name = 'SignupWorkflow'")
    assert latest == [{"deployment_id": v2_id}]
    # The original version (nothing pinned) goes after its delay; no duplicate is left.
    w.wait(settled, DRAIN_DELAY + 60, "the original version removed")
    assert rel.deployments() == {v2_id}
    assert v1_new_id not in rel.deployments()
    rel.click(carol, carol_secret)
    assert rel.ingress.get(f"/restate/workflow/SignupWorkflow/{carol}/attach").json() is True


def test_admin_api_outage_during_a_rollout(rel: Release) -> None:
    w = Workload(rel)
    start = w.wait(settled, 60, "settled")
    restate = f"statefulset/{FULLNAME}-restate"
    rel.cluster.kubectl("-n", NAMESPACE, "scale", restate, "--replicas=0")
    try:
        eventually(
            lambda: (
                not rel.json("get", "pods", "-l", "app.kubernetes.io/component=restate-server")[
                    "items"
                ]
            ),
            120,
            "Restate's pod gone",
        )
        # The rollout as an edit of the workload (`helm upgrade` would scale Restate back up).
        patch = [{"op": "add", "path": "/spec/template/metadata/annotations/outage",
                  "value": "during-the-outage"}]  # fmt: skip
        rel.cluster.kubectl(
            "-n", NAMESPACE, "patch", f"rwl/{WORKLOAD}", "--type=json", f"-p={json.dumps(patch)}"
        )
        down = w.wait(
            lambda s: (
                s["desiredVersion"] != start["currentVersion"]
                and any(c.get("reason") == "AdminApiUnreachable" for c in s.get("conditions", []))
                and version_of(s, s["desiredVersion"]).get("readyReplicas") == 1
            ),
            180,
            "the new version's pods Ready, the admin API unreachable",
        )
        # It waits: nothing changes but the retries, counted by the operator's metric of
        # failed reconciliations (an Event is written only when the Ready reason changes).
        failed = operator_errors(rel, "AdminApiUnreachable")
        eventually(
            lambda: operator_errors(rel, "AdminApiUnreachable") >= failed + 3,
            60,
            "three more failed reconciliations (restate_operator_reconcile_errors)",
            interval=1,
        )
        waiting = w.status()
        assert waiting["currentVersion"] == start["currentVersion"]
        assert version_of(waiting, down["desiredVersion"])["state"] == "Pending"
        assert ("Warning", "AdminApiUnreachable") in {e[:2] for e in w.events()}
    finally:
        rel.cluster.kubectl("-n", NAMESPACE, "scale", restate, "--replicas=1")
    back = time.monotonic()
    done = w.wait(
        lambda s: s["currentVersion"] == down["desiredVersion"], 300, "the rollout completed"
    )
    record("Restate scaled back up -> rollout registered (s)", round(time.monotonic() - back, 1))
    assert done["deploymentId"] != start["deploymentId"]
    w.wait(settled, DRAIN_DELAY + 90, "the old version removed after the outage")
    assert any(e[1] == "Registered" and down["desiredVersion"] in e[2] for e in w.events())


# ----------------------------------------------------------------------------- can it fail?


def _legacy_objects(image: str) -> dict[str, Any]:
    """The previous design: a plain Deployment + Service + RestateRegistration."""
    name = "legacy-signup"
    labels = {
        "app.kubernetes.io/name": "restate-examples",
        "app.kubernetes.io/instance": LEGACY_RELEASE,
        "app.kubernetes.io/component": "example-service",  # admitted by the NetworkPolicy
        "app": name,
    }
    public = f"{LEGACY_RELEASE}-restate-examples-restate-identity-public"
    keys = {"configMapKeyRef": {"name": public, "key": "publicKey"}}
    container = {
        "name": "service",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "examples_runtime", "signup_workflow.service:app"],
        "ports": [{"name": "http2", "containerPort": 9080}],
        "env": [{"name": "RESTATE_IDENTITY_KEYS", "valueFrom": keys}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 9080}, "periodSeconds": 2},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }  # fmt: skip
    pod = {
        "metadata": {"labels": labels},
        "spec": {"containers": [container], "volumes": [{"name": "tmp", "emptyDir": {}}],
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                     "seccompProfile": {"type": "RuntimeDefault"}}},
    }  # fmt: skip
    items = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": pod}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"selector": {"app": name},
                  "ports": [{"name": "http2", "port": 9080, "targetPort": 9080,
                             "appProtocol": "kubernetes.io/h2c"}]}},
        {"apiVersion": "examples.restate.dev/v1alpha1", "kind": "RestateRegistration",
         "metadata": {"name": name},
         "spec": {"service": {"name": name, "port": 9080}, "deployment": {"name": name},
                  "deletionPolicy": "Force"}},
    ]  # fmt: skip
    return {"apiVersion": "v1", "kind": "List", "items": items}


def test_the_previous_design_shows_the_journal_mismatch(cluster: RealCluster) -> None:
    """The same rollout with a RestateRegistration following one Deployment and one Service:
    after the rollout the old run's deployment URI reaches the new code, and Restate reports
    the journal mismatch; the run never completes."""
    uninstall(cluster, LEGACY_NAMESPACE, LEGACY_RELEASE)
    install(cluster, LEGACY_NAMESPACE, LEGACY_RELEASE,
            "--set", "examples.signupWorkflow.enabled=false")  # fmt: skip
    try:
        with connected(cluster, LEGACY_NAMESPACE, LEGACY_RELEASE) as rel:

            def kubectl_apply(tag: str | None) -> None:
                assert cluster.images is not None
                image = cluster.images.ref(TARGET, tag)
                cluster.kubectl("-n", LEGACY_NAMESPACE, "apply", "-f", "-",
                                input=json.dumps(_legacy_objects(image)))  # fmt: skip

            def registration() -> dict[str, Any]:
                status: dict[str, Any] = rel.json("get", "rreg", "legacy-signup").get("status", {})
                return status

            kubectl_apply(None)  # the suite's own tag here
            first = eventually(
                lambda: (s := registration()).get("deploymentId") and s, 180, "registered"
            )
            dave = f"dave-{uuid.uuid4().hex[:6]}"
            rel.start_signup(dave)
            secret = rel.secret(dave, "app=legacy-signup")
            eventually(lambda: rel.run(dave).get("status") == "suspended", 60, "dave suspended")

            pods = rel.json("get", "pods", "-l", "app=legacy-signup")["items"]
            old_pods = [pod["metadata"]["name"] for pod in pods]
            kubectl_apply(INCOMPATIBLE_TAG)
            cluster.kubectl("-n", LEGACY_NAMESPACE, "rollout", "status", "deploy/legacy-signup",
                            "--timeout=180s")  # fmt: skip
            # A replaced pod drains for up to its grace period, and Restate's open HTTP/2
            # connection still reaches it there: wait until the old code is gone, so the
            # Service has only the new code behind it (on kind the click could otherwise land
            # on the draining old pod, which completes the run).
            rolled_out = time.monotonic()
            cluster.kubectl("-n", LEGACY_NAMESPACE, "wait", "--for=delete", "--timeout=120s",
                            *(f"pod/{name}" for name in old_pods))  # fmt: skip
            record("previous design: rollout status -> replaced pods gone (s)",
                   f"{time.monotonic() - rolled_out:.1f}")  # fmt: skip
            eventually(
                lambda: registration().get("deploymentId") not in (None, first["deploymentId"]),
                120,
                "the new revision registered",
            )
            rel.click(dave, secret)

            def outcome() -> dict[str, Any]:
                run = rel.run(dave)
                if run.get("last_failure") or run.get("status") == "completed":
                    return run
                raise LookupError(f"dave's run: {run}")  # not yet; a timeout names the last one

            failed = eventually(outcome, 120, "Restate to report dave's run failing")
            record("previous design: dave's run", json.dumps(failed))
            assert failed["status"] != "completed", f"the old code completed the run: {failed}"
            assert failed["pinned_deployment_id"] == first["deploymentId"]
            text = f"{failed['last_failure_error_code']} {failed['last_failure']}".lower()
            assert "mismatch" in text or failed["last_failure_error_code"] == "RT0016", failed
            # The new code was given the old run: the SDK found the mismatch at its new step.
            assert "run [incompatible step]" in rel.logs("app=legacy-signup")
    finally:
        # Not the release's (the uninstall hook would not see it): gone while the operator runs.
        cluster.kubectl(
            "-n", LEGACY_NAMESPACE, "delete", "rreg", "legacy-signup", "--wait=true",
            "--timeout=120s", "--ignore-not-found", check=False,
        )  # fmt: skip
        uninstall(cluster, LEGACY_NAMESPACE, LEGACY_RELEASE)
