"""Helpers the e2e modules share: a probe pod to connect from, and what a user reads from an
example's own port through `kubectl port-forward`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx

from localcluster.controlplane import REPO_ROOT
from plugins.real_cluster import RealCluster
from testkit.processes import eventually

CHART = REPO_ROOT / "deploy" / "helm" / "restate-examples"


def example_image(cluster: RealCluster, namespace: str) -> str:
    """The image of an example's pod (it has Python, for the connection probes)."""
    return cluster.kubectl(
        "-n", namespace, "get", "pods", "-l", "examples.restate.dev/example=user-object",
        "-o", "jsonpath={.items[0].spec.containers[0].image}",
    )  # fmt: skip


def probe_pod(
    cluster: RealCluster,
    namespace: str,
    name: str,
    image: str,
    labels: dict[str, str] | None = None,
) -> str:
    """A long-running pod (no label of the chart) to connect from; its name once Ready."""
    metadata = {"name": name, "namespace": namespace, "labels": labels or {}}
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "probe", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["python", "-c", "import time; time.sleep(3600)"],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}",
                    "--timeout=120s")  # fmt: skip
    return name


def awakeable_for(cluster: RealCluster, namespace: str, fullname: str, invocation_id: str) -> str:
    """The awakeable id from the building-blocks service's GET /awakeables, as a user gets it
    (port-forward: the service itself is not exposed)."""
    with (
        cluster.port_forward(namespace, f"svc/{fullname}-building-blocks", 9080) as url,
        httpx.Client(base_url=url, timeout=10) as service,
    ):
        found: str = eventually(
            lambda: service.get("/awakeables").json().get(invocation_id),
            90,
            f"the awakeable of {invocation_id} on GET /awakeables",
            interval=0.5,
        )
    return found


@contextlib.contextmanager
def installed(cluster: RealCluster, release: str, namespace: str, *helm_args: str) -> Iterator[str]:
    """The chart installed as the README has users install it, and waited for as it has them
    wait (the four examples registered: their workloads Ready); uninstalled at the end."""
    cluster.helm(
        "install", release, str(CHART), "--namespace", namespace, "--create-namespace",
        "--wait", "--timeout", "10m", *cluster.cluster_values, *helm_args,
    )  # fmt: skip
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", "restateworkloads",
                    "--all", "--timeout=300s")  # fmt: skip
    try:
        yield namespace
    finally:
        cluster.helm("uninstall", release, "--namespace", namespace, "--wait", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
