"""Drift repair, admin API outages, operator restarts and the three deletion policies."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from operator_tests.support import OperatorEnv, eventually, spec_for, start_signup

from testkit.restate import ExampleService, RestateServer

pytestmark = pytest.mark.kube


def registered(env: OperatorEnv, example: str = "user-object", **extra: Any) -> dict[str, Any]:
    """An example process behind a Service + Deployment, registered by the operator."""
    service = env.start_example(example)
    env.create_service("svc", service.port)
    env.create_deployment("svc")
    env.operator.start()
    env.create_registration("reg", spec_for("svc", service.port, **extra))
    return env.wait_reason("reg", "Registered")


def test_drift_after_restate_lost_its_data_is_repaired(env: OperatorEnv) -> None:
    first = registered(env)
    env.wipe_restate()
    assert env.restate_deployments() == []
    status = env.wait_reregistered(
        "reg", first["deploymentId"], 30, "the drift check to register again"
    )
    assert env.restate_deployments() == [
        {"id": status["deploymentId"], "endpoint": first["endpoint"]}
    ]
    answer = httpx.post(f"{env.server.ingress_url}/GreeterObject/x/greet", json="Hi", timeout=30)
    assert answer.status_code == 200


def test_admin_api_down_gives_a_condition_and_converges_when_back(env: OperatorEnv) -> None:
    first = registered(env)
    env.server.stop()
    down = time.monotonic()
    env.wait_reason("reg", "AdminApiUnreachable", timeout=30)
    eventually(
        lambda: ("Warning", "AdminApiUnreachable") in [e[:2] for e in env.events("reg")],
        10,
        "a Warning event",
    )
    assert env.ready("reg")["status"] == "False"
    time.sleep(8)  # a few backoff rounds (capped at 4 s in the tests)
    assert env.operator.process.running
    env.server.start()
    back = time.monotonic()
    status = env.wait_reason("reg", "Registered", timeout=30)
    assert status["deploymentId"] == first["deploymentId"]  # the data survived: same deployment
    assert len(env.restate_deployments()) == 1
    print(f"down {back - down:.1f}s, converged {time.monotonic() - back:.1f}s after restart")
    metrics = env.operator.metrics()
    assert 'restate_operator_reconcile_errors_total{reason="AdminApiUnreachable"}' in metrics


def test_admin_api_rejection_is_reported(env: OperatorEnv) -> None:
    service = env.start_example("user-object")
    env.create_service("svc", service.port + 0)
    env.create_deployment("svc")
    env.operator.start()
    # Nothing listens behind this address: Restate's discovery fails, the server says why.
    service.stop()
    env.create_registration("reg", spec_for("svc", service.port))
    status = env.wait_reason("reg", "AdminApiRejected", timeout=30)
    condition = env.ready("reg")
    assert "META0003" in condition["message"] or "discover" in condition["message"].lower()
    assert "deploymentId" not in status
    service.start()
    env.wait_reason("reg", "Registered", timeout=30)


def test_operator_restart_creates_no_duplicate(env: OperatorEnv) -> None:
    first = registered(env)
    env.operator.stop()
    env.operator.start()
    time.sleep(3 * 2.0)  # a few drift checks
    assert env.ready("reg")["reason"] == "Registered"
    assert env.registration("reg")["status"]["deploymentId"] == first["deploymentId"]
    assert env.restate_deployments() == [
        {"id": first["deploymentId"], "endpoint": first["endpoint"]}
    ]


def test_force_deletion_removes_the_deployment_at_once(env: OperatorEnv) -> None:
    registered(env, deletionPolicy="Force")
    env.delete_registration("reg")
    eventually(lambda: env.gone("reg"), 30, "the registration to be deleted")
    eventually(lambda: env.restate_deployments() == [], 10, "the Restate deployment to go")


def test_orphan_deletion_leaves_the_deployment(env: OperatorEnv) -> None:
    first = registered(env, deletionPolicy="Orphan")
    env.delete_registration("reg")
    eventually(lambda: env.gone("reg"), 30, "the registration to be deleted")
    assert [d["id"] for d in env.restate_deployments()] == [first["deploymentId"]]


def pinned(server: RestateServer, deployment_id: str) -> int:
    rows = server.query(
        "SELECT count(*) AS n FROM sys_invocation_status "
        f"WHERE pinned_deployment_id = '{deployment_id}' AND status != 'completed'"
    )
    return int(rows[0]["n"])


def test_drain_waits_for_a_suspended_workflow(env: OperatorEnv) -> None:
    first = registered(env, "signup-workflow")
    service = env.services[0]
    assert isinstance(service, ExampleService)
    secret = start_signup(env, service, "drain-user")
    eventually(lambda: pinned(env.server, first["deploymentId"]) == 1, 30, "a pinned invocation")

    env.delete_registration("reg")
    env.wait_reason("reg", "Draining", timeout=30)
    time.sleep(4)
    assert not env.gone("reg")
    assert [d["id"] for d in env.restate_deployments()] == [first["deploymentId"]]

    answer = httpx.post(
        f"{env.server.ingress_url}/SignupWorkflow/drain-user/click", json=secret, timeout=30
    )
    assert answer.status_code == 200
    eventually(lambda: env.gone("reg"), 30, "the drained registration to be deleted")
    eventually(lambda: env.restate_deployments() == [], 10, "the Restate deployment to go")


def test_drain_timeout_falls_back_to_force(env: OperatorEnv) -> None:
    first = registered(env, "signup-workflow", drainTimeoutSeconds=3)
    service = env.services[0]
    assert isinstance(service, ExampleService)
    start_signup(env, service, "stuck-user")
    eventually(lambda: pinned(env.server, first["deploymentId"]) == 1, 30, "a pinned invocation")
    env.delete_registration("reg")
    eventually(lambda: env.gone("reg"), 30, "the registration to be deleted after the timeout")
    assert env.restate_deployments() == []


def test_deletion_does_not_hang_when_restate_is_gone(env: OperatorEnv) -> None:
    registered(env, deletionPolicy="Force")
    env.server.stop()
    env.delete_registration("reg")
    # FORCE_DELETION_TIMEOUT_SECONDS is 20 in the tests.
    eventually(lambda: env.gone("reg"), 45, "the deletion to give up")


def test_a_stranger_taking_over_the_services_is_reported_not_fought(env: OperatorEnv) -> None:
    registered(env)
    port = env.services[0].port if isinstance(env.services[0], ExampleService) else 0
    stranger = env.server.register(f"http://127.0.0.1:{port}/")  # by hand, not by the operator
    env.wait_reason("reg", "ConflictingRegistration", timeout=30)
    time.sleep(3 * 2.0)  # a few drift checks: the operator does not take the services back
    assert env.latest() == {"GreeterObject": stranger["id"]}
    env.server.admin.delete(f"/deployments/{stranger['id']}", params={"force": "true"})
    status = env.wait_reason("reg", "Registered", timeout=30)
    assert env.latest() == {"GreeterObject": status["deploymentId"]}


def unreachable_attempts(env: OperatorEnv) -> float:
    metrics = env.operator.metrics()
    found = re.search(r'reconcile_errors_total\{reason="AdminApiUnreachable"\} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


def test_registration_follows_restate_readiness_within_seconds(env: OperatorEnv) -> None:
    # As on `helm install`: the operator and the services are up before Restate is.
    service = env.start_example("user-object")
    env.create_service("svc", service.port)
    env.create_deployment("svc")
    env.wait_available("svc")
    env.server.stop()
    # With this backoff a growing retry delay would be 20 s, then 40 s: only a short retry
    # while the admin API does not answer registers within seconds of Restate being ready.
    env.operator.process.env.update({"BACKOFF_INITIAL_SECONDS": "20", "BACKOFF_MAX_SECONDS": "600"})
    env.operator.start()
    env.create_registration("reg", spec_for("svc", service.port))
    env.wait_reason("reg", "AdminApiUnreachable", timeout=30)
    eventually(lambda: unreachable_attempts(env) >= 2, 45, "a second attempt")
    env.server.start()  # returns once Restate's admin API and ingress are healthy
    healthy = time.monotonic()
    env.wait_reason("reg", "Registered", timeout=15)
    print(f"registered {time.monotonic() - healthy:.1f}s after Restate became healthy")
