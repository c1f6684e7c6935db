"""Fixtures: the CRD, a real Restate server, example service processes and the operator
(`python -m restate_operator` as a subprocess with its ServiceAccount's kubeconfig, holding
exactly the Role from the chart's `files/operator-rules.yaml`)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiException

from testkit.examples import email_secret
from testkit.kube import Kube
from testkit.ports import free_port
from testkit.processes import Process, eventually
from testkit.restate import EXAMPLES, REPO, ExampleService, RestateServer, Suite

CHART = REPO / "deploy" / "helm" / "restate-examples"
CRD = CHART / "crds" / "restateregistrations.yaml"
WORKLOAD_CRD = CHART / "crds" / "restateworkloads.yaml"
RULES = CHART / "files" / "operator-rules.yaml"
GROUP, VERSION, PLURAL = "examples.restate.dev", "v1alpha1", "restateregistrations"
WORKLOADS = "restateworkloads"
HERE = Path(__file__).resolve().parent
DRIFT_SECONDS = 2.0


@pytest.fixture(scope="session")
def crd(kube: Kube) -> Path:
    for crd_file, plural in ((CRD, PLURAL), (WORKLOAD_CRD, WORKLOADS)):
        kube.kubectl("apply", "-f", str(crd_file))
        kube.kubectl(
            "wait", "--for=condition=Established", f"crd/{plural}.{GROUP}", "--timeout=60s"
        )
    return CRD


class Operator:
    """The operator as a process, started and stopped by the test."""

    def __init__(self, kubeconfig: Path, namespace: str, admin_url: str, workdir: Path) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.process = Process(
            "restate-operator",
            [sys.executable, "-m", "restate_operator"],
            {
                "KUBECONFIG": str(kubeconfig),
                "WATCH_NAMESPACE": namespace,
                "RESTATE_ADMIN_URL": admin_url,
                # Every Service is this machine's service process; the Service name at the end
                # keeps each RestateWorkload version's URI distinct, as its Service does.
                "ENDPOINT_TEMPLATE": "http://127.0.0.1:{port}{path}/{service}",
                "DRAIN_POLL_SECONDS": "1",
                "BIND_HOST": "127.0.0.1",
                "METRICS_PORT": str(self.metrics_port),
                "LIVENESS_PORT": str(self.liveness_port),
                "DRIFT_CHECK_SECONDS": str(DRIFT_SECONDS),
                "BACKOFF_MAX_SECONDS": "4",
                "FORCE_DELETION_TIMEOUT_SECONDS": "20",
            },
            workdir / "operator.log",
        )

    def start(self) -> None:
        self.process.start()
        eventually(self.alive, 60, "the operator's liveness endpoint")

    def alive(self) -> bool:
        if not self.process.running:
            raise RuntimeError(f"operator exited:\n{self.process.tail()}")
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        return httpx.get(url, timeout=2).status_code == 200

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.process.stop()


@dataclass
class OperatorEnv:
    """One test's namespace, Restate server, service processes and operator."""

    kube: Kube
    namespace: str
    workdir: Path
    restate_bin: Path
    server: RestateServer = field(init=False)
    operator: Operator = field(init=False)
    services: list[ExampleService | Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.api = self.kube.api_client()
        self.core = k8s.CoreV1Api(self.api)
        self.apps = k8s.AppsV1Api(self.api)
        self.custom = k8s.CustomObjectsApi(self.api)
        self.server = RestateServer(self.restate_bin, self.workdir)
        self.server.start()
        self.kubeconfig = self.grant_operator_rights()
        self.operator = Operator(
            self.kubeconfig, self.namespace, self.server.admin_url, self.workdir
        )

    def grant_operator_rights(self) -> Path:
        """ServiceAccount + Role with exactly the chart's rules + RoleBinding."""
        ns = self.namespace
        self.core.create_namespaced_service_account(
            ns, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="restate-operator"))
        )
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "restate-operator", "namespace": ns},
            "rules": yaml.safe_load(RULES.read_text()),
        }
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "restate-operator", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": "restate-operator"},
            "subjects": [{"kind": "ServiceAccount", "name": "restate-operator", "namespace": ns}],
        }  # fmt: skip
        items = {"apiVersion": "v1", "kind": "List", "items": [role, binding]}
        self.kube.kubectl("apply", "-f", "-", input=json.dumps(items))
        return self.kube.service_account_kubeconfig(ns, "restate-operator")

    # ----------------------------------------------------------------- services

    def start_example(self, name: str) -> ExampleService:
        service = ExampleService(
            name, self.workdir, {"RESTATE_INGRESS_URL": self.server.ingress_url}
        )
        service.start()
        self.services.append(service)
        return service

    def start_app(self, app: str, port: int) -> Process:
        """A test app (module under tests/operator_tests) on a given port."""
        process = Process(
            app,
            [sys.executable, "-m", "examples_runtime", app],
            {"HOST": "127.0.0.1", "PORT": str(port), "LOG_FORMAT": "json",
             "PYTHONPATH": str(HERE)},
            self.workdir / f"{app.replace(':', '-')}.log",
        )  # fmt: skip
        process.start()
        self.services.append(process)
        eventually(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200,
            30,
            f"{app} to become ready",
        )
        return process

    # ----------------------------------------------------------------- Kubernetes objects

    def create_service(self, name: str, port: int) -> None:
        self.core.create_namespaced_service(
            self.namespace,
            k8s.V1Service(
                metadata=k8s.V1ObjectMeta(name=name),
                spec=k8s.V1ServiceSpec(
                    selector={"app": name}, ports=[k8s.V1ServicePort(port=port, name="restate")]
                ),
            ),
        )

    def create_deployment(self, name: str, version: str = "v1") -> None:
        labels = {"app": name}
        container = k8s.V1Container(
            name="service",
            image="registry.k8s.io/pause:3.10",
            env=[k8s.V1EnvVar(name="VERSION", value=version)],
        )
        self.apps.create_namespaced_deployment(
            self.namespace,
            k8s.V1Deployment(
                metadata=k8s.V1ObjectMeta(name=name),
                spec=k8s.V1DeploymentSpec(
                    replicas=1,
                    selector=k8s.V1LabelSelector(match_labels=labels),
                    template=k8s.V1PodTemplateSpec(
                        metadata=k8s.V1ObjectMeta(labels=labels),
                        spec=k8s.V1PodSpec(containers=[container]),
                    ),
                ),
            ),
        )

    def wait_available(self, name: str, timeout: float = 60) -> None:
        """Waits until the Deployment reports Available (kwok made its pods Ready)."""

        def available() -> bool:
            status = self.apps.read_namespaced_deployment(name, self.namespace).status
            conditions = (status.conditions if status else None) or []
            return any(c.type == "Available" and c.status == "True" for c in conditions)

        eventually(available, timeout, f"deployment {name} to be Available")

    def set_version(self, deployment: str, version: str) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "service", "env": [{"name": "VERSION", "value": version}]}]}}}}  # fmt: skip
        self.apps.patch_namespaced_deployment(deployment, self.namespace, patch)

    def create_registration(self, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RestateRegistration",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def registration(self, name: str) -> dict[str, Any]:
        body = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return cast(dict[str, Any], body)

    def delete_registration(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def gone(self, name: str) -> bool:
        try:
            self.registration(name)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    def ready(self, name: str) -> dict[str, Any]:
        """The `Ready` condition (and the whole status under "status")."""
        status: dict[str, Any] = self.registration(name).get("status") or {}
        condition: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c["type"] == "Ready"), {}
        )
        return {**condition, "status_fields": status}

    def wait_reason(self, name: str, reason: str, timeout: float = 60) -> dict[str, Any]:
        """Waits until Ready has `reason`; returns the registration's status."""
        condition = eventually(
            lambda: (c := self.ready(name)).get("reason") == reason and c,
            timeout,
            f"{name} to have reason {reason}",
        )
        status: dict[str, Any] = condition["status_fields"]
        return status

    def wait_reregistered(
        self, name: str, old_id: str, timeout: float, what: str
    ) -> dict[str, Any]:
        """Waits until `name` is Registered under a Restate deployment id other than `old_id`."""
        status: dict[str, Any] = eventually(
            lambda: (s := self.wait_reason(name, "Registered"))["deploymentId"] != old_id and s,
            timeout,
            what,
        )
        return status

    def events(self, name: str) -> list[tuple[str | None, str | None, str | None]]:
        events = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return [(e.type, e.reason, e.message) for e in events]

    def restate_deployments(self) -> list[dict[str, Any]]:
        return self.server.query("SELECT id, endpoint FROM sys_deployment")

    def latest(self) -> dict[str, str]:
        rows = self.server.query("SELECT name, deployment_id FROM sys_service")
        return {r["name"]: r["deployment_id"] for r in rows}

    def wipe_restate(self) -> None:
        """Stops the server, deletes its data and starts it again on the same ports."""
        self.server.stop()
        shutil.rmtree(self.server.base_dir)
        self.server.base_dir.mkdir()
        self.server.start()

    # ----------------------------------------------------------------- RestateWorkloads

    def create_workload(self, name: str, port: int, version: str = "v1", **extra: Any) -> None:
        spec = {"selector": {"matchLabels": {"app": name}},
                "template": workload_template(name, version), "port": port, **extra}  # fmt: skip
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RestateWorkload",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, WORKLOADS, body)

    def registered_workload(
        self, example: str, name: str, **extra: Any
    ) -> tuple[ExampleService, dict[str, Any]]:
        """The preamble of most workload tests: the example's service process and the operator
        started, a RestateWorkload `name` of it (version v1, spec fields `extra`) created and
        Registered. (The service, the workload's status.)"""
        service = self.start_example(example)
        self.operator.start()
        self.create_workload(name, service.port, "v1", **extra)
        status = self.wait_workload(
            name, lambda s: ready_reason(s) == "Registered", 60, f"{name} v1 registered"
        )
        return service, status

    def workload(self, name: str) -> dict[str, Any]:
        body = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, WORKLOADS, name
        )
        return cast(dict[str, Any], body)

    def patch_workload(self, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, WORKLOADS, name, patch
        )

    def set_workload_version(self, name: str, version: str) -> None:
        self.patch_workload(name, {"spec": {"template": workload_template(name, version)}})

    def workload_status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.workload(name).get("status") or {}
        return status

    def wait_workload(self, name: str, check: Any, timeout: float, what: str) -> dict[str, Any]:
        """Waits until check(status) is true; returns the status."""
        status: dict[str, Any] = eventually(
            lambda: (s := self.workload_status(name)) and check(s) and s, timeout, what
        )
        return status

    def workload_gone(self, name: str) -> bool:
        try:
            self.workload(name)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    def replicasets(self, workload: str) -> dict[str, int]:
        """Version -> spec.replicas of the workload's ReplicaSets."""
        items = self.plain(
            self.apps.list_namespaced_replica_set(
                self.namespace, label_selector=f"examples.restate.dev/workload={workload}"
            )
        )["items"]
        return {
            rs["metadata"]["labels"]["examples.restate.dev/version"]: rs["spec"]["replicas"]
            for rs in items
        }

    def plain(self, obj: Any) -> Any:
        """A kubernetes client object as the API server's JSON."""
        return self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]

    def version_services(self, workload: str) -> set[str]:
        items = self.plain(
            self.core.list_namespaced_service(
                self.namespace, label_selector=f"examples.restate.dev/workload={workload}"
            )
        )["items"]
        return {s["metadata"]["name"] for s in items}

    def close(self) -> None:
        self.operator.stop()
        # Without the operator nothing removes the finalizers: let the namespace go.
        for plural in (PLURAL, WORKLOADS):
            listed = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural
            )
            for item in cast(dict[str, Any], listed)["items"]:
                patch: dict[str, Any] = {"metadata": {"finalizers": []}}
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural, item["metadata"]["name"], patch
                )
        for service in self.services:
            service.stop()
        self.server.stop()
        self.api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def env(
    kube: Kube, crd: Path, namespace: str, restate_bin: Path, tmp_path: Path
) -> Iterator[OperatorEnv]:
    setup = OperatorEnv(kube, namespace, tmp_path, restate_bin)
    yield setup
    setup.close()


def workload_template(name: str, version: str) -> dict[str, Any]:
    """A pod template (kwok runs no container); VERSION makes a new version."""
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "service", "image": "registry.k8s.io/pause:3.10",
                                 "env": [{"name": "VERSION", "value": version}]}]},
    }  # fmt: skip


def spec_for(service: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"service": {"name": service, "port": port}, "deployment": {"name": service}, **extra}


__all__ = ["EXAMPLES", "OperatorEnv", "crd", "env", "eventually", "spec_for", "workload_template"]


def start_signup(env: OperatorEnv, service: ExampleService, user: str) -> str:
    """Starts a SignupWorkflow run (one-way) and returns the secret of its email."""
    answer = httpx.post(
        f"{env.server.ingress_url}/SignupWorkflow/{user}/run/send",
        json={"name": "Bob", "email": "bob@example.com"},
        timeout=30,
    )
    assert answer.status_code in (200, 202), answer.text
    return email_secret(Suite(env.server, {"signup-workflow": service}), user)


def ready_reason(status: dict[str, Any]) -> str | None:
    """The reason of the Ready condition of a status (None without one)."""
    ready: dict[str, Any] = next(
        (c for c in status.get("conditions", []) if c["type"] == "Ready"), {}
    )
    return ready.get("reason")


def version_of(status: dict[str, Any], hash_: str) -> dict[str, Any]:
    """The status entry of one version ({} if the status does not list it)."""
    return next((v for v in status.get("versions", []) if v["hash"] == hash_), {})


def click(env: OperatorEnv, user: str, secret: str) -> None:
    """Clicks the signup link of a SignupWorkflow run and checks that the run completed."""
    base = env.server.ingress_url
    answer = httpx.post(f"{base}/SignupWorkflow/{user}/click", json=secret, timeout=30)
    assert answer.status_code == 200, answer.text
    result = httpx.get(f"{base}/restate/workflow/SignupWorkflow/{user}/attach", timeout=60)
    assert result.json() is True
