"""Smoke tests of the test control plane (fixture ``kube`` from testkit.kube).

Each test checks one behaviour the rest of the suite relies on and fails if it breaks:
namespaces, CRD schema validation, Deployments becoming Available (controller-manager,
scheduler and kwok), RBAC denial of a ServiceAccount, and helm install/uninstall.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiException

from testkit.kube import Kube
from testkit.processes import eventually

pytestmark = pytest.mark.kube


@pytest.fixture
def core(kube: Kube) -> Iterator[k8s.CoreV1Api]:
    with kube.api_client() as api:
        yield k8s.CoreV1Api(api)


def test_namespace_fixture_creates_a_fresh_namespace(
    kube: Kube, namespace: str, core: k8s.CoreV1Api
) -> None:
    ns = core.read_namespace(namespace)
    assert ns.status is not None and ns.status.phase == "Active"
    # The controller-manager's serviceaccount controller populated it.
    assert core.read_namespaced_service_account("default", namespace).metadata is not None

    with kube.temp_namespace("scratch") as other:
        assert other != namespace
        assert core.read_namespace(other).status.phase == "Active"  # type: ignore[union-attr]

    def gone_or_terminating() -> bool:
        try:
            ns = core.read_namespace(other)
        except ApiException as e:
            return bool(e.status == 404)
        return ns.status is not None and ns.status.phase == "Terminating"

    eventually(gone_or_terminating, timeout=30, what=f"namespace {other} to be deleted")

    version = json.loads(kube.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")


def test_crd_structural_schema_rejects_invalid_objects(kube: Kube, namespace: str) -> None:
    group = f"t{uuid.uuid4().hex[:8]}.restate-examples.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1},
                                        "color": {"type": "string", "enum": ["red", "blue"]},
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(crd))
    try:
        kube.kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=60s")
        with kube.api_client() as api:
            custom = k8s.CustomObjectsApi(api)

            def widget(name: str, spec: dict[str, object]) -> dict[str, object]:
                return {
                    "apiVersion": f"{group}/v1",
                    "kind": "Widget",
                    "metadata": {"name": name},
                    "spec": spec,
                }

            def create_valid() -> bool:
                try:
                    custom.create_namespaced_custom_object(
                        group, "v1", namespace, "widgets", widget("ok", {"size": 3})
                    )
                except ApiException as e:
                    if e.status == 404:  # the new resource is not served yet
                        return False
                    raise
                return True

            eventually(create_valid, timeout=30, what="the Widget resource to be served")

            with pytest.raises(ApiException) as rejected:
                custom.create_namespaced_custom_object(
                    group, "v1", namespace, "widgets", widget("bad", {"size": 0, "color": "green"})
                )
            assert rejected.value.status == 422, rejected.value
            body = str(rejected.value.body)
            assert "spec.size" in body, body
            assert "spec.color" in body, body

            with pytest.raises(ApiException) as missing:
                custom.create_namespaced_custom_object(
                    group, "v1", namespace, "widgets", widget("empty", {})
                )
            assert missing.value.status == 422
            assert "spec.size" in str(missing.value.body)

            listed = custom.list_namespaced_custom_object(group, "v1", namespace, "widgets")
            assert isinstance(listed, dict)
            names = [item["metadata"]["name"] for item in listed["items"]]
            assert names == ["ok"]
    finally:
        kube.kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def test_deployment_becomes_available(kube: Kube, namespace: str, core: k8s.CoreV1Api) -> None:
    labels = {"app": "smoke"}
    deployment = k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="smoke"),
        spec=k8s.V1DeploymentSpec(
            replicas=2,
            selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(
                    containers=[k8s.V1Container(name="main", image="registry.k8s.io/pause:3.10")]
                ),
            ),
        ),
    )
    with kube.api_client() as api:
        apps = k8s.AppsV1Api(api)
        apps.create_namespaced_deployment(namespace, deployment)

        def available() -> k8s.V1DeploymentStatus | None:
            status = apps.read_namespaced_deployment_status("smoke", namespace).status
            if status is None or status.available_replicas != 2:
                return None
            conditions = {c.type: c.status for c in status.conditions or []}
            return status if conditions.get("Available") == "True" else None

        eventually(available, timeout=90, what="Deployment smoke to become Available")

    pods = core.list_namespaced_pod(namespace, label_selector="app=smoke").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec is not None and pod.spec.node_name, "pod was not scheduled"
        assert pod.status is not None and pod.status.phase == "Running"
        ready = {c.type: c.status for c in pod.status.conditions or []}
        assert ready.get("Ready") == "True", pod.status


def test_service_account_without_rights_is_denied(
    kube: Kube, namespace: str, core: k8s.CoreV1Api
) -> None:
    core.create_namespaced_service_account(
        namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="nobody"))
    )
    with kube.as_service_account(namespace, "nobody") as api:
        sa_core = k8s.CoreV1Api(api)
        with pytest.raises(ApiException) as denied:
            sa_core.list_namespaced_pod(namespace)
        assert denied.value.status == 403, denied.value  # authenticated, not authorized
        assert f"system:serviceaccount:{namespace}:nobody" in str(denied.value.body)

        # kubectl with the ServiceAccount's kubeconfig is denied the same way.
        sa_kubeconfig = kube.service_account_kubeconfig(namespace, "nobody")
        proc = kube.kubectl("get", "pods", "-n", namespace, kubeconfig=sa_kubeconfig, check=False)
        assert proc.returncode != 0 and "forbidden" in proc.stderr.lower(), proc

        # Control: once RBAC grants it, the very same identity may list pods.
        kube.kubectl(
            "create", "role", "pod-reader", "-n", namespace, "--verb=list", "--resource=pods"
        )
        kube.kubectl(
            "create", "rolebinding", "nobody-reads", "-n", namespace,
            "--role=pod-reader", f"--serviceaccount={namespace}:nobody",
        )  # fmt: skip

        def allowed() -> bool:
            try:
                sa_core.list_namespaced_pod(namespace)
            except ApiException as e:
                if e.status == 403:
                    return False
                raise
            return True

        eventually(allowed, timeout=30, what="the RoleBinding to take effect")
        with pytest.raises(ApiException) as still_denied:
            sa_core.list_namespaced_secret(namespace)
        assert still_denied.value.status == 403


CHART_YAML = """\
apiVersion: v2
name: smoke
description: throwaway chart for the control-plane smoke test
type: application
version: 0.1.0
appVersion: "1.0"
"""

VALUES_YAML = """\
greeting: hello
"""

CONFIGMAP_YAML = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
data:
  greeting: {{ .Values.greeting | quote }}
"""

SERVICEACCOUNT_YAML = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}-sa
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
"""


def test_helm_install_and_uninstall(
    kube: Kube, namespace: str, core: k8s.CoreV1Api, tmp_path: Path
) -> None:
    chart = tmp_path / "smoke"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(CHART_YAML)
    (chart / "values.yaml").write_text(VALUES_YAML)
    (chart / "templates" / "configmap.yaml").write_text(CONFIGMAP_YAML)
    (chart / "templates" / "serviceaccount.yaml").write_text(SERVICEACCOUNT_YAML)

    kube.helm("lint", str(chart))
    kube.helm("install", "demo", str(chart), "-n", namespace, "--set", "greeting=hi")

    cm = core.read_namespaced_config_map("demo-config", namespace)
    assert cm.data == {"greeting": "hi"}
    assert cm.metadata is not None and cm.metadata.labels is not None
    assert cm.metadata.labels.get("app.kubernetes.io/managed-by") == "Helm"
    core.read_namespaced_service_account("demo-sa", namespace)
    releases = json.loads(kube.helm("list", "-n", namespace, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("demo", "deployed")]

    kube.helm("uninstall", "demo", "-n", namespace)

    for read in (core.read_namespaced_config_map, core.read_namespaced_service_account):
        name = "demo-config" if read == core.read_namespaced_config_map else "demo-sa"

        def gone(read: Callable[[str, str], object] = read, name: str = name) -> bool:
            try:
                read(name, namespace)
            except ApiException as e:
                return bool(e.status == 404)
            return False

        eventually(gone, timeout=30, what=f"{name} to be deleted by helm uninstall")
    assert json.loads(kube.helm("list", "-n", namespace, "-o", "json").stdout) == []
