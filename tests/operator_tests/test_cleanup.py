"""The chart's pre-delete cleanup (`python -m restate_operator.cleanup`, run with the hook's
own Role) against the real operator and a real restate-server: registrations go through the
operator's finalizer, a drain longer than the uninstall budget is cut short by force, and a
missing operator does not leave the uninstall hanging."""

from __future__ import annotations

import time

import httpx
import pytest
from chart.chartkit import PlayedHook
from operator_tests.support import GROUP, PLURAL, VERSION, OperatorEnv, eventually, spec_for

from testkit.examples import email_secret
from testkit.restate import ExampleService, Suite

pytestmark = pytest.mark.kube

RELEASE = "rx"
LABELS = {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/name": "restate-examples"}


def cleanup_hook(env: OperatorEnv, drain: float, timeout: float) -> PlayedHook:
    hook = PlayedHook(env.kube, env.namespace, RELEASE, "templates/operator/cleanup-hook.yaml")
    assert hook.command[:3] == ["python", "-m", "restate_operator.cleanup"]
    for flag, value in (("--drain-seconds", drain), ("--timeout-seconds", timeout)):
        hook.command[hook.command.index(flag) + 1] = str(value)
    return hook


def release_registration(env: OperatorEnv, name: str, example: str, **extra: object) -> str:
    """An example behind a Service + Deployment, registered, labelled as the release's."""
    service = env.start_example(example)
    env.create_service(name, service.port)
    env.create_deployment(name)
    env.create_registration(name, spec_for(name, service.port, **extra))
    patch = {"metadata": {"labels": LABELS}}
    env.custom.patch_namespaced_custom_object(GROUP, VERSION, env.namespace, PLURAL, name, patch)
    deployment_id: str = env.wait_reason(name, "Registered")["deploymentId"]
    return deployment_id


def test_cleanup_drains_then_forces_through_the_operator(env: OperatorEnv) -> None:
    env.operator.start()
    # A workflow waiting for its click: pinned to the deployment, it would drain for 600 s.
    workflow = release_registration(env, "signup", "signup-workflow", drainTimeoutSeconds=600)
    greeter = release_registration(env, "greeter", "user-object", deletionPolicy="Force")
    env.create_registration("other", spec_for("greeter", 1))  # not the release's: kept
    service = env.services[0]
    assert isinstance(service, ExampleService)
    answer = httpx.post(
        f"{env.server.ingress_url}/SignupWorkflow/u1/run/send",
        json={"name": "Bob", "email": "bob@example.com"},
        timeout=30,
    )
    assert answer.status_code in (200, 202), answer.text
    email_secret(Suite(env.server, {"signup-workflow": service}), "u1")  # it waits now

    started = time.monotonic()
    log = cleanup_hook(env, drain=3, timeout=60).run_job(timeout=90).stderr
    took = time.monotonic() - started
    assert "signup still draining after 3s: removing it from Restate by force" in log, log
    assert "removed their finalizers" not in log, log  # the operator finished both itself
    assert took < 30, f"cleanup took {took:.0f}s"
    assert env.gone("signup") and env.gone("greeter") and not env.gone("other")
    ids = {d["id"] for d in env.restate_deployments()}
    assert workflow not in ids and greeter not in ids  # removed from Restate by the operator


def test_cleanup_without_an_operator_removes_the_finalizers_after_its_timeout(
    env: OperatorEnv,
) -> None:
    env.operator.start()
    release_registration(env, "greeter", "user-object")
    env.operator.stop()  # e.g. scaled to zero: nobody runs the finalizer
    log = cleanup_hook(env, drain=1, timeout=3).run_job(timeout=60).stderr
    assert "removed their finalizers" in log, log
    eventually(lambda: env.gone("greeter"), 10, "the registration to be gone")
