"""A real Prometheus in the cluster, as a user of the chart's annotations would run it: in the
namespace ``monitoring`` (the chart's default ``networkPolicy.metricsFrom``), discovering pods
through the Kubernetes API with ``deploy/monitoring/prometheus.yml``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx

from localcluster.controlplane import REPO_ROOT
from plugins.real_cluster import RealCluster

NAMESPACE = "monitoring"
# The Prometheus Operator release whose ServiceMonitor CRD the chart is tested against.
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
CACHE = Path(os.environ.get("RESTATE_EXAMPLES_CACHE", Path.home() / ".cache/restate-examples"))
SCRAPE_CONFIG = REPO_ROOT / "deploy" / "monitoring" / "prometheus.yml"
# The local node and kind on podman have Prometheus built from its Go module as an image
# (localcluster/images/images.sh); elsewhere, the upstream image of the same release.
IMAGES = {
    "local-node": "localhost/restate-examples-prometheus:test",
    "kind-podman": "localhost/restate-examples-prometheus:test",
    "default": "quay.io/prometheus/prometheus:v3.16.0",
}


def manifests(image: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "prometheus"}
    rules = [
        {"apiGroups": [""], "resources": ["pods", "services", "endpoints", "nodes"],
         "verbs": ["get", "list", "watch"]},
    ]  # fmt: skip
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "prometheus", "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "restate-examples-test-prometheus"}, "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "restate-examples-test-prometheus"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "restate-examples-test-prometheus"},
            "subjects": [{"kind": "ServiceAccount", "name": "prometheus",
                          "namespace": NAMESPACE}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "prometheus", "namespace": NAMESPACE},
         "data": {"prometheus.yml": SCRAPE_CONFIG.read_text()}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "prometheus", "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "prometheus",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [
                            {
                                "name": "prometheus",
                                "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "args": [
                                    "--config.file=/etc/prometheus/prometheus.yml",
                                    "--storage.tsdb.path=/prometheus",
                                    "--web.listen-address=:9090",
                                ],
                                "ports": [{"name": "web", "containerPort": 9090}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/-/ready", "port": "web"},
                                    "periodSeconds": 2,
                                },
                                "securityContext": {"allowPrivilegeEscalation": False,
                                                    "readOnlyRootFilesystem": True,
                                                    "capabilities": {"drop": ["ALL"]}},
                                "volumeMounts": [
                                    {"name": "config", "mountPath": "/etc/prometheus"},
                                    {"name": "data", "mountPath": "/prometheus"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "config", "configMap": {"name": "prometheus"}},
                            {"name": "data", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
    ]  # fmt: skip


def deploy(cluster: RealCluster, workdir: Path) -> None:
    where = cluster.provider if cluster.kind is None else f"kind-{cluster.kind.provider}"
    image = os.environ.get(
        "RESTATE_EXAMPLES_PROMETHEUS_IMAGE", IMAGES.get(where, IMAGES["default"])
    )
    path = workdir / "prometheus.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests(image)}))
    cluster.kubectl("apply", "-f", str(path))
    cluster.kubectl("-n", NAMESPACE, "rollout", "status", "deploy/prometheus", "--timeout=180s")


def remove(cluster: RealCluster) -> None:
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
    cluster.kubectl("delete", "clusterrole,clusterrolebinding",
                    "restate-examples-test-prometheus", check=False)  # fmt: skip


def service_monitor_crd() -> Path:
    """The ServiceMonitor CRD of the pinned Prometheus Operator release, from its Go module
    (fetched once through the Go module proxy into the project's module cache)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", PROMETHEUS_OPERATOR],
        env={**os.environ, "GOMODCACHE": str(CACHE / "go" / "mod"), "GOFLAGS": "-mod=mod",
             "GOTOOLCHAIN": "local"},
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    crd = Path(json.loads(out)["Dir"]) / "example" / "prometheus-operator-crd"
    return crd / "monitoring.coreos.com_servicemonitors.yaml"


class PrometheusApi:
    """Prometheus's HTTP API (through a port-forward)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.http.get("/api/v1/query", params={"query": expr}).json()
        if answer["status"] != "success":
            raise AssertionError(f"{expr}: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params: dict[str, str | float] = {"query": expr, "start": start, "end": end, "step": step}
        answer = self.http.get("/api/v1/query_range", params=params).json()
        if answer["status"] != "success":
            raise AssertionError(f"{expr}: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.http.get("/api/v1/targets").json()["data"][
            "activeTargets"
        ]
        return active
