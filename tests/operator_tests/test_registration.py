"""The operator against a real control plane, a real restate-server and real service processes:
registration, rollouts, rollback, RBAC, metrics, invalid specs and missing references."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiException
from operator_tests.support import GROUP, PLURAL, VERSION, OperatorEnv, eventually, spec_for

from plugins.measured import record

pytestmark = pytest.mark.kube


def test_registers_once_available_with_least_privilege(env: OperatorEnv) -> None:
    greeter = env.start_example("user-object")
    env.create_service("greeter", greeter.port)
    env.create_deployment("greeter")
    env.operator.start()
    env.create_registration("greeter", spec_for("greeter", greeter.port))

    status = env.wait_reason("greeter", "Registered")
    assert status["deploymentId"].startswith("dp_")
    assert status["endpoint"].startswith(f"http://127.0.0.1:{greeter.port}/rev-")
    assert status["services"] == [
        {"name": "GreeterObject", "type": "VirtualObject", "handlers": ["greet", "ungreet"]}
    ]
    assert status["podTemplateHash"] and status["observedGeneration"] == 1
    assert env.restate_deployments() == [
        {"id": status["deploymentId"], "endpoint": status["endpoint"]}
    ]
    answer = httpx.post(f"{env.server.ingress_url}/GreeterObject/mary/greet", json="Hi", timeout=30)
    assert answer.status_code == 200 and "1-th" in answer.text
    eventually(
        lambda: ("Normal", "Registered") in [e[:2] for e in env.events("greeter")],
        10,
        "the Registered event",
    )

    metrics = env.operator.metrics()
    assert "restate_operator_registered_deployments 1.0" in metrics
    assert 'restate_operator_reconciles_total{result="ok"}' in metrics
    record("operator_rss_mib", env.operator.rss_bytes() / 2**20)

    # The printer columns.
    table = env.kube.kubectl("get", "rreg", "-n", env.namespace).stdout
    record("kubectl get rreg", "\n" + table)
    assert "READY" in table and "DEPLOYMENT ID" in table and status["deploymentId"] in table

    # The operator's identity has exactly the chart's rules: nothing wider.
    with env.kube.as_service_account(env.namespace, "restate-operator") as api:
        with pytest.raises(ApiException) as secret:
            k8s.CoreV1Api(api).create_namespaced_secret(
                env.namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="x"))
            )
        assert secret.value.status == 403
        with pytest.raises(ApiException) as delete:
            k8s.AppsV1Api(api).delete_namespaced_deployment("greeter", env.namespace)
        assert delete.value.status == 403
    assert "Not enough permissions" not in env.operator.process.log_text()
    assert "Forbidden" not in env.operator.process.log_text()


def test_rollout_registers_new_code_and_rollback_becomes_latest(env: OperatorEnv) -> None:
    v1 = env.start_example("user-object")
    env.create_service("greeter", v1.port)
    env.create_deployment("greeter", "v1")
    env.wait_available("greeter")  # before the resource exists: its registration is no rollout
    env.operator.start()
    env.create_registration("greeter", spec_for("greeter", v1.port, drainDelaySeconds=1))
    first = env.wait_reason("greeter", "Registered")

    # Rollout: new pod template; the new code (one more handler) now answers on the Service.
    v1.stop()
    env.start_app("greeter_v2:app", v1.port)
    env.set_version("greeter", "v2")
    second = env.wait_reregistered(
        "greeter", first["deploymentId"], 60, "a new registration after the rollout"
    )
    assert second["podTemplateHash"] != first["podTemplateHash"]
    assert second["services"][0]["handlers"] == ["greet", "ungreet", "wave"]  # rediscovered
    assert env.latest() == {"GreeterObject": second["deploymentId"]}
    answer = httpx.post(f"{env.server.ingress_url}/GreeterObject/bob/wave", timeout=30)
    assert answer.status_code == 200 and answer.text == '"bob waves"'
    # The superseded deployment had nothing pinned: it is removed from Restate (after 1 s).
    eventually(lambda: len(env.restate_deployments()) == 1, 30, "the old deployment to go")

    # Rollback to the v1 template: a registration again, and the latest for its services.
    env.set_version("greeter", "v1")
    third = env.wait_reregistered(
        "greeter", second["deploymentId"], 60, "a registration after the rollback"
    )
    # Deployment Available -> registered, for the two rollouts (not the first registration:
    # that Deployment was Available before the resource existed).
    samples = {
        line.split()[0]: float(line.split()[-1])
        for line in env.operator.metrics().splitlines()
        if line.startswith("restate_operator_available_to_registered_seconds_")
    }
    assert samples["restate_operator_available_to_registered_seconds_count"] == 2
    record(
        "available_to_registered_seconds_mean",
        samples["restate_operator_available_to_registered_seconds_sum"] / 2,
    )
    assert third["podTemplateHash"] == first["podTemplateHash"]
    assert third["endpoint"] == first["endpoint"]
    assert env.latest() == {"GreeterObject": third["deploymentId"]}


def test_invalid_specs_are_rejected_by_the_schema(env: OperatorEnv) -> None:
    bad: list[dict[str, Any]] = [
        {"deployment": {"name": "x"}},  # no service
        {"service": {"name": "x"}, "deployment": {"name": "x"}, "deletionPolicy": "Later"},
        {"service": {"name": "x"}, "deployment": {"name": "x"}, "drainTimeoutSeconds": -1},
        {"service": {"name": "Not_A_Name"}, "deployment": {"name": "x"}},
        {"service": {"name": "x", "port": 70000}, "deployment": {"name": "x"}},
    ]
    for i, spec in enumerate(bad):
        with pytest.raises(ApiException) as rejected:
            env.create_registration(f"bad-{i}", spec)
        assert rejected.value.status == 422, spec
    env.create_registration("defaults", {"service": {"name": "x"}, "deployment": {"name": "x"}})
    spec = env.registration("defaults")["spec"]
    assert spec["service"]["port"] == 9080
    assert (spec["deletionPolicy"], spec["drainTimeoutSeconds"], spec["useHttp11"]) == (
        "Drain",
        600,
        False,
    )
    assert spec["drainDelaySeconds"] == 300


def test_missing_service_and_deployment_recover_and_conflicts_are_reported(
    env: OperatorEnv,
) -> None:
    greeter = env.start_example("user-object")
    env.operator.start()
    env.create_registration("greeter", spec_for("greeter", greeter.port))
    env.wait_reason("greeter", "ServiceNotFound")
    env.create_service("greeter", greeter.port)
    env.wait_reason("greeter", "DeploymentNotFound")
    env.create_deployment("greeter")
    first = env.wait_reason("greeter", "Registered", timeout=30)

    time.sleep(1.1)  # a later creationTimestamp (whole seconds)
    env.create_registration("greeter-again", spec_for("greeter", greeter.port))
    env.wait_reason("greeter-again", "ConflictingRegistration")
    assert env.ready("greeter")["reason"] == "Registered"
    assert env.restate_deployments() == [
        {"id": first["deploymentId"], "endpoint": first["endpoint"]}
    ]
    eventually(
        lambda: (
            ("Warning", "ConflictingRegistration") in [e[:2] for e in env.events("greeter-again")]
        ),
        10,
        "a Warning event about the conflict",
    )

    # The first one goes (Orphan: its Restate deployment stays): the second takes over.
    patch = {"spec": {"deletionPolicy": "Orphan"}}
    env.custom.patch_namespaced_custom_object(
        GROUP, VERSION, env.namespace, PLURAL, "greeter", patch
    )
    env.delete_registration("greeter")
    status = env.wait_reason("greeter-again", "Registered", timeout=30)
    assert status["deploymentId"] == first["deploymentId"]  # adopted, not duplicated
