"""End-to-end on a kind cluster (needs a Docker engine and kind; skipped otherwise).

Builds the five images from the Dockerfile, loads them into kind, installs the chart, waits
for the four RestateRegistrations to be Ready, and through `kubectl port-forward` to Restate's
ingress sends every request of the examples' documentation; kills a service pod while an
invocation is in flight and sees it complete; runs `helm test`; uninstalls.

Environment: RESTATE_EXAMPLES_KIND_CLUSTER (default restate-examples; created if missing and
then deleted unless RESTATE_EXAMPLES_KIND_KEEP=1).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from chart.chartkit import CHART, TARGETS, VALUE_KEYS

REPO_ROOT = Path(__file__).resolve().parents[2]
TAG = "e2e"
NAMESPACE = "restate-examples-e2e"
RELEASE = "e2e"
FULLNAME = f"{RELEASE}-restate-examples"
T = TypeVar("T")


def _unusable_reason() -> str | None:
    for tool in ("docker", "kind", "kubectl", "helm"):
        if shutil.which(tool) is None:
            return f"{tool} not found on PATH"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        return "no Docker engine (`docker info` failed): " + info.stderr.strip()[:200]
    return None


REASON = _unusable_reason()
pytestmark = [
    pytest.mark.kind,
    pytest.mark.skipif(REASON is not None, reason=f"kind e2e needs Docker and kind: {REASON}"),
]


def run(args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    proc = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
        )
    return proc.stdout


def eventually(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = check()
            if last:
                return last
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


@dataclass(frozen=True)
class Cluster:
    name: str
    kubeconfig: Path

    def kubectl(self, *args: str, timeout: float = 300) -> str:
        return run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], timeout=timeout)

    def helm(self, *args: str, timeout: float = 900) -> str:
        return run(["helm", "--kubeconfig", str(self.kubeconfig), *args], timeout=timeout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    name = os.environ.get("RESTATE_EXAMPLES_KIND_CLUSTER", "restate-examples")
    existing = run(["kind", "get", "clusters"]).split()
    if name not in existing:
        run(["kind", "create", "cluster", "--name", name, "--wait", "180s"])
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    kubeconfig.write_text(run(["kind", "get", "kubeconfig", "--name", name]))
    try:
        yield Cluster(name, kubeconfig)
    finally:
        if name not in existing and not os.environ.get("RESTATE_EXAMPLES_KIND_KEEP"):
            run(["kind", "delete", "cluster", "--name", name])


@pytest.fixture(scope="module")
def images(cluster: Cluster) -> dict[str, str]:
    built = {}
    for target in TARGETS:
        image = f"restate-examples-{target}:{TAG}"
        run(["docker", "build", "--target", target, "--tag", image, str(REPO_ROOT)], timeout=1800)
        run(["kind", "load", "docker-image", image, "--name", cluster.name])
        built[target] = image
    return built


@pytest.fixture(scope="module")
def release(cluster: Cluster, images: dict[str, str]) -> Iterator[str]:
    sets = []
    for target, image in images.items():
        repository, tag = image.rsplit(":", 1)
        sets += ["--set", f"{VALUE_KEYS[target]}.image.repository={repository}"]
        sets += ["--set", f"{VALUE_KEYS[target]}.image.tag={tag}"]
    sets += ["--set", "examples.buildingBlocks.cancelDelaySeconds=5"]
    sets += ["--set", "examples.buildingBlocks.sleepSeconds=1"]
    cluster.helm(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
        "--wait", "--timeout", "10m", *sets,
    )  # fmt: skip
    try:
        yield RELEASE
    finally:
        with contextlib.suppress(AssertionError):
            cluster.helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def port_forward(cluster: Cluster, target: str, remote: int) -> Iterator[str]:
    local = _free_port()
    proc = subprocess.Popen(
        [
            "kubectl", "--kubeconfig", str(cluster.kubeconfig), "-n", NAMESPACE,
            "port-forward", target, f"{local}:{remote}", "--address", "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{local}"
        eventually(lambda: _connectable(local), timeout=30, what=f"port-forward to {target}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _connectable(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def ingress(cluster: Cluster, release: str) -> Iterator[httpx.Client]:
    cluster.kubectl(
        "-n", NAMESPACE, "wait", "--for=condition=Ready", "restateregistrations", "--all",
        "--timeout=300s",
    )  # fmt: skip
    with (
        port_forward(cluster, f"svc/{FULLNAME}-restate", 8080) as url,
        httpx.Client(base_url=url, timeout=120) as client,
    ):
        yield client


def logs(cluster: Cluster, example: str) -> str:
    return cluster.kubectl("-n", NAMESPACE, "logs", f"deploy/{FULLNAME}-{example}", "--tail=-1")


def test_registrations_ready(cluster: Cluster, release: str) -> None:
    out = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "restateregistrations", "-o", "json"))
    ready = {
        item["metadata"]["name"]
        for item in out["items"]
        for cond in item.get("status", {}).get("conditions", [])
        if cond["type"] == "Ready" and cond["status"] == "True"
    }
    assert len(out["items"]) == 4
    assert ready == {item["metadata"]["name"] for item in out["items"]}


def test_subscriptions(ingress: httpx.Client) -> None:
    answer = ingress.post(
        "/SubscriptionService/add",
        json={
            "userId": "Sam Beckett",
            "creditCard": "1234-5678-9012-3456",
            "subscriptions": ["Netflix", "Disney+", "HBO Max"],
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.text in ("", "null")


def test_greeter_object(ingress: httpx.Client) -> None:
    mary, barack = f"mary-{uuid.uuid4().hex[:6]}", f"barack-{uuid.uuid4().hex[:6]}"
    assert ingress.post(f"/GreeterObject/{mary}/greet", json="Hi").json() == (
        f"Hi {mary} for the 1-th time."
    )
    assert ingress.post(f"/GreeterObject/{barack}/greet", json="Hello").json() == (
        f"Hello {barack} for the 1-th time."
    )
    assert ingress.post(f"/GreeterObject/{mary}/ungreet").json() == (
        f"Dear {mary}, taking one greeting back: 0."
    )


def test_signup_workflow(cluster: Cluster, ingress: httpx.Client) -> None:
    user = f"userid-{uuid.uuid4().hex[:6]}"
    sent = ingress.post(
        f"/SignupWorkflow/{user}/run/send", json={"name": "Bob", "email": "bob@builder.com"}
    )
    assert sent.status_code in (200, 202), sent.text
    pattern = re.compile(rf"/verify/{user}\?secret=([0-9a-zA-Z-]+)")
    secret = eventually(
        lambda: m.group(1) if (m := pattern.search(logs(cluster, "signup-workflow"))) else None,
        timeout=60,
        what="the verification email in the logs",
    )
    assert ingress.post(f"/SignupWorkflow/{user}/click", json=secret).status_code == 200
    assert ingress.get(f"/restate/workflow/SignupWorkflow/{user}/attach").json() is True


def test_building_blocks_survive_a_pod_kill(cluster: Cluster, ingress: httpx.Client) -> None:
    """MyService/run waits on an awakeable; the pod is killed meanwhile; Restate resumes the
    invocation on the new pod once the awakeable is resolved."""
    before = set(re.findall(r"waiting on awakeable (\S+?);", logs(cluster, "building-blocks")))
    key = f"e2e-{uuid.uuid4().hex[:8]}"
    sent = ingress.post("/MyService/run/send", headers={"idempotency-key": key})
    assert sent.status_code in (200, 202), sent.text
    invocation_id: str = sent.json()["invocationId"]

    def new_awakeable() -> str | None:
        found = set(re.findall(r"waiting on awakeable (\S+?);", logs(cluster, "building-blocks")))
        fresh = found - before
        return next(iter(fresh)) if fresh else None

    awakeable = eventually(new_awakeable, timeout=90, what="the awakeable id in the logs")
    cluster.kubectl(
        "-n", NAMESPACE, "delete", "pod", "--wait=false",
        "-l", "examples.restate.dev/example=building-blocks",
    )  # fmt: skip
    cluster.kubectl(
        "-n", NAMESPACE, "rollout", "status", f"deploy/{FULLNAME}-building-blocks",
        "--timeout=180s",
    )  # fmt: skip
    resolved = ingress.post(f"/restate/awakeables/{awakeable}/resolve", json="hello")
    assert resolved.status_code in (200, 202), resolved.text
    result: Any = ingress.get(f"/restate/invocation/{invocation_id}/attach", timeout=180).json()
    assert result["greeting"] == "hello"
    assert result["charged"] is True


def test_helm_test(cluster: Cluster, ingress: httpx.Client) -> None:
    out = cluster.helm("test", RELEASE, "--namespace", NAMESPACE, "--logs", "--timeout", "10m")
    assert "Phase:          Succeeded" in out or "Succeeded" in out, out


def test_uninstall(cluster: Cluster, release: str, ingress: httpx.Client) -> None:
    cluster.helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "10m")
    left = cluster.kubectl(
        "-n", NAMESPACE, "get", "deploy,sts,svc,restateregistrations,networkpolicies",
        "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name",
    )  # fmt: skip
    assert left.strip() == ""
