"""Restate's rule on every path: an old version (or a superseded deployment) is judged from
Restate itself on every pass, never from the operator's status. Against the real API server
(kwok runs the pods), a real restate-server and real service processes:

- the status wiped while a workflow is pinned to an old version: the version is found again
  by its URI and kept, the workflow completes, then it drains;
- the drain delay: a drained version is still there until drainDelaySeconds after it drained;
- an admin answer without the count (the real server behind a proxy that drops the rows):
  nothing is removed, the condition and an event say why;
- a deployment GET /deployments no longer lists (the proxy hides it) is still counted, and
  deleted once drained;
- a DELETE Restate has not accepted (the proxy refuses it): the status never says Removing;
- RestateRegistration: a superseded deployment stays while an invocation is pinned to it and
  for the drain delay after."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from operator_tests.support import (
    GROUP,
    PLURAL,
    VERSION,
    OperatorEnv,
    click,
    eventually,
    ready_reason,
    spec_for,
    start_signup,
    version_of,
)

from plugins.measured import record
from restate_operator import clock

pytestmark = pytest.mark.kube


def deployment_ids(env: OperatorEnv) -> set[str]:
    return {d["id"] for d in env.restate_deployments()}


def rollout(env: OperatorEnv, name: str, first: dict[str, Any]) -> dict[str, Any]:
    """Version 2 of the workload: registered, version 1 draining."""
    env.set_workload_version(name, "v2")
    return env.wait_workload(
        name,
        lambda s: (
            ready_reason(s) == "Registered" and s["currentVersion"] != first["currentVersion"]
        ),
        60,
        "version 2 current",
    )


def present(env: OperatorEnv, name: str, hash_: str, deployment_id: str) -> bool:
    """The version's ReplicaSet (with its pods), Service and Restate deployment are there."""
    return (
        env.replicasets(name).get(hash_) == 1
        and f"{name}-{hash_}" in env.version_services(name)
        and deployment_id in deployment_ids(env)
    )


def test_status_wiped_while_a_workflow_is_pinned_keeps_the_version(env: OperatorEnv) -> None:
    signup, first = env.registered_workload(
        "signup-workflow", "signup", drainDelaySeconds=2, revisionHistoryLimit=0
    )
    v1, v1_id = first["currentVersion"], first["deploymentId"]
    secret = start_signup(env, signup, "pinned")  # suspended on its promise, pinned to v1
    second = rollout(env, "signup", first)
    v2 = second["currentVersion"]
    env.wait_workload(
        "signup", lambda s: version_of(s, v1).get("pinnedInvocations") == 1, 30, "v1 pinned"
    )

    # The status is lost (a restore without status, a replace) while the operator is down.
    env.operator.stop()
    env.kube.kubectl(
        "patch", "rwl", "signup", "-n", env.namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": None}),
    )  # fmt: skip
    assert env.workload_status("signup") == {}
    env.operator.start()

    # Found again by its URI, judged from Restate: pinned, so kept with its pods and Service.
    found = env.wait_workload(
        "signup",
        lambda s: s.get("currentVersion") == v2 and version_of(s, v1).get("pinnedInvocations") == 1,
        30,
        "v1 judged from Restate after the status was lost",
    )
    assert version_of(found, v1)["deploymentId"] == v1_id
    assert version_of(found, v1)["state"] == "Draining"
    assert present(env, "signup", v1, v1_id)
    eventually(  # kopf posts events in the background
        lambda: ("Normal", "VersionAdopted") in [e[:2] for e in env.events("signup")],
        10,
        "the VersionAdopted event",
    )

    # The workflow completes on its deployment; then version 1 drains as usual.
    click(env, "pinned", secret)
    env.wait_workload("signup", lambda s: s["drainingVersions"] == 0, 30, "v1 drained, removed")
    assert env.replicasets("signup") == {v2: 1}
    assert env.version_services("signup") == {f"signup-{v2}"}
    eventually(lambda: deployment_ids(env) == {second["deploymentId"]}, 10, "v1 deleted")


def test_a_drained_version_stays_for_the_drain_delay(env: OperatorEnv) -> None:
    delay = 6.0
    _, first = env.registered_workload(
        "user-object", "greeter", drainDelaySeconds=int(delay), revisionHistoryLimit=0
    )
    v1, v1_id = first["currentVersion"], first["deploymentId"]
    rollout(env, "greeter", first)
    drained = env.wait_workload(
        "greeter", lambda s: version_of(s, v1).get("drainedAt"), 30, "v1 found drained"
    )
    drained_at = version_of(drained, v1)["drainedAt"]
    # Until drainDelaySeconds after it drained: pods, Service and Restate deployment stay.
    while clock.since(drained_at) < delay - 1.5:
        assert present(env, "greeter", v1, v1_id), clock.since(drained_at)
        time.sleep(0.3)
    eventually(
        lambda: v1 not in env.replicasets("greeter") and v1_id not in deployment_ids(env),
        30,
        "v1 removed after the delay",
    )
    waited = clock.since(drained_at)
    assert waited >= delay, waited
    record(f"drained -> removed (s, drainDelaySeconds {delay:.0f})", round(waited, 1))
    assert f"greeter-{v1}" not in env.version_services("greeter")


class MangledQueries:
    """A proxy in front of the real admin API that can alter its answers:
    - `drop_rows`: answers to POST /query lose their rows (a 200 without the count);
    - `hide`: GET /deployments does not list these deployment ids (Restate still has them);
    - `fail_deletes`: DELETE /deployments/... is answered 500 and not forwarded.
    Everything else passes unchanged; each alteration is counted."""

    def __init__(self, upstream: str) -> None:
        self.drop_rows = False
        self.hide: set[str] = set()
        self.fail_deletes = False
        self.mangled = self.hidden = self.failed_deletes = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, status: int, content: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                if outer.fail_deletes and self.command == "DELETE":
                    outer.failed_deletes += 1
                    self._answer(500, b"held by the test", "text/plain")
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length")}  # fmt: skip
                answer = httpx.request(
                    self.command, upstream + self.path, content=body, headers=headers, timeout=30
                )
                content = answer.content
                if outer.drop_rows and self.path.startswith("/query") and answer.is_success:
                    content = json.dumps({"rows": []}).encode()
                    outer.mangled += 1
                hide = set(outer.hide)
                if hide and self.command == "GET" and self.path == "/deployments":
                    listed = answer.json()
                    kept = [d for d in listed["deployments"] if d["id"] not in hide]
                    outer.hidden += len(listed["deployments"]) - len(kept)
                    content = json.dumps({**listed, "deployments": kept}).encode()
                self._answer(
                    answer.status_code, content, answer.headers.get("content-type", "text/plain")
                )

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(env: OperatorEnv) -> Iterator[MangledQueries]:
    mangler = MangledQueries(env.server.admin_url)
    yield mangler
    mangler.close()


def test_an_answer_without_the_count_removes_nothing(
    env: OperatorEnv, proxy: MangledQueries
) -> None:
    _, first = env.registered_workload(
        "user-object", "greeter", drainDelaySeconds=0, revisionHistoryLimit=0, adminUrl=proxy.url
    )
    v1, v1_id = first["currentVersion"], first["deploymentId"]
    proxy.drop_rows = True
    env.set_workload_version("greeter", "v2")
    failed = env.wait_workload(
        "greeter",
        lambda s: ready_reason(s) == "AdminApiInvalidAnswer",
        30,
        "the bad answer reported",
    )
    ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "expected one row with n" in ready["message"]
    # Several passes on such answers (each a count asked and not given): nothing goes.
    eventually(lambda: proxy.mangled >= 4, 30, "four count queries answered without rows")
    assert present(env, "greeter", v1, v1_id)
    warnings = eventually(
        lambda: [e for e in env.events("greeter") if e[:2] == ("Warning", "AdminApiInvalidAnswer")],
        10,
        "the AdminApiInvalidAnswer warning",
    )
    assert warnings and "pinned to" in str(warnings[0][2])
    # The real answers again: version 1 (nothing pinned, delay 0) goes.
    proxy.drop_rows = False
    env.wait_workload(
        "greeter",
        lambda s: ready_reason(s) == "Registered" and s["drainingVersions"] == 0,
        30,
        "v1 removed once the count is answered",
    )
    # DELETE /deployments is asynchronous in Restate (202): gone a moment later.
    eventually(
        lambda: v1_id not in deployment_ids(env) and v1 not in env.replicasets("greeter"),
        10,
        "v1's Restate deployment and ReplicaSet deleted",
    )


def test_a_pinned_deployment_missing_from_the_list_is_still_counted(
    env: OperatorEnv, proxy: MangledQueries
) -> None:
    """GET /deployments not listing a known deployment id is no evidence that nothing is
    pinned to it: the count is asked all the same, and the version stays while it is 1."""
    signup, first = env.registered_workload(
        "signup-workflow", "signup", drainDelaySeconds=0, revisionHistoryLimit=0, adminUrl=proxy.url
    )
    v1, v1_id = first["currentVersion"], first["deploymentId"]
    secret = start_signup(env, signup, "unlisted")  # suspended on its promise, pinned to v1
    second = rollout(env, "signup", first)
    env.wait_workload(
        "signup", lambda s: version_of(s, v1).get("pinnedInvocations") == 1, 30, "v1 pinned"
    )
    proxy.hide = {v1_id}
    # Several passes that do not see v1's deployment listed: it is still counted, and kept.
    eventually(lambda: proxy.hidden >= 4, 30, "four GET /deployments without v1's deployment")
    kept = version_of(env.workload_status("signup"), v1)
    assert kept.get("pinnedInvocations") == 1 and kept.get("state") == "Draining", kept
    assert present(env, "signup", v1, v1_id)
    # Still unlisted, the workflow completes on v1; then v1 (delay 0) goes, and so does its
    # Restate deployment (the DELETE is sent to the known id, listed or not).
    click(env, "unlisted", secret)
    env.wait_workload("signup", lambda s: s["drainingVersions"] == 0, 30, "v1 drained, removed")
    eventually(lambda: deployment_ids(env) == {second["deploymentId"]}, 10, "v1 deleted")


def test_removing_is_not_written_before_the_delete_is_answered(
    env: OperatorEnv, proxy: MangledQueries
) -> None:
    """While Restate does not accept the DELETE of a drained version's deployment, the status
    does not call the version Removing: it is Draining, with its pods, Service and deployment."""
    _, first = env.registered_workload(
        "user-object", "greeter", drainDelaySeconds=0, revisionHistoryLimit=0, adminUrl=proxy.url
    )
    v1, v1_id = first["currentVersion"], first["deploymentId"]
    proxy.fail_deletes = True
    env.set_workload_version("greeter", "v2")  # v1 drained at once (delay 0): its DELETE due
    eventually(lambda: proxy.failed_deletes >= 2, 60, "two DELETEs of v1's deployment refused")
    failed = env.wait_workload(
        "greeter",
        lambda s: ready_reason(s) == "AdminApiUnreachable" and s["currentVersion"] != v1,
        30,
        "v2 current, the refused DELETE reported",
    )
    assert version_of(failed, v1).get("state") == "Draining", failed["versions"]
    assert present(env, "greeter", v1, v1_id)
    # Restate answers the DELETE: then v1 goes.
    proxy.fail_deletes = False
    env.wait_workload(
        "greeter",
        lambda s: ready_reason(s) == "Registered" and s["drainingVersions"] == 0,
        30,
        "v1 removed once the DELETE is answered",
    )
    eventually(lambda: v1_id not in deployment_ids(env), 10, "v1's Restate deployment deleted")


def test_registration_keeps_a_superseded_deployment_while_pinned_then_the_delay(
    env: OperatorEnv,
) -> None:
    signup = env.start_example("signup-workflow")
    env.create_service("signup", signup.port)
    env.create_deployment("signup", "v1")
    env.operator.start()
    delay = 5.0
    env.create_registration("signup", spec_for("signup", signup.port, drainDelaySeconds=5))
    first = env.wait_reason("signup", "Registered")
    secret = start_signup(env, signup, "just-before")  # started just before the rollout
    env.set_version("signup", "v2")
    second = env.wait_reregistered("signup", first["deploymentId"], 60, "the rollout registered")

    def superseded(status: dict[str, Any]) -> dict[str, Any]:
        return next(
            (e for e in status.get("superseded") or []
             if e["deploymentId"] == first["deploymentId"]), {},
        )  # fmt: skip

    eventually(
        lambda: superseded(env.ready("signup")["status_fields"]).get("pinnedInvocations") == 1,
        30,
        "the superseded deployment counted as pinned",
    )
    # Kept while pinned for longer than the drain delay: the delay only starts once nothing is
    # pinned (a pinned deployment dropped after the delay alone fails here).
    pinned_seen, ok_before = time.monotonic(), _reconciles_ok(env)
    eventually(
        lambda: _reconciles_ok(env) >= ok_before + 3 and time.monotonic() - pinned_seen > delay + 1,
        30,
        "three more passes, over more than the drain delay",
    )
    assert first["deploymentId"] in deployment_ids(env)
    assert "drainedAt" not in superseded(env.ready("signup")["status_fields"])
    assert env.latest() == {"SignupWorkflow": second["deploymentId"]}

    # The run completes on its (superseded) deployment; that goes only after the delay.
    click(env, "just-before", secret)
    drained = eventually(
        lambda: superseded(s := env.ready("signup")["status_fields"]).get("drainedAt") and s,
        30,
        "the superseded deployment found drained",
    )
    drained_at = superseded(drained)["drainedAt"]
    while clock.since(drained_at) < delay - 1.5:
        assert first["deploymentId"] in deployment_ids(env), clock.since(drained_at)
        time.sleep(0.3)
    eventually(
        lambda: deployment_ids(env) == {second["deploymentId"]}, 30, "removed after the delay"
    )
    assert clock.since(drained_at) >= delay
    final = env.wait_reason("signup", "Registered")
    assert final["supersededDeploymentIds"] == [] and final["superseded"] == []


def _reconciles_ok(env: OperatorEnv) -> float:
    for line in env.operator.metrics().splitlines():
        if line.startswith('restate_operator_reconciles_total{result="ok"}'):
            return float(line.split()[-1])
    return 0.0


def test_registration_deletes_a_superseded_deployment_the_list_does_not_show(
    env: OperatorEnv, proxy: MangledQueries
) -> None:
    """GET /deployments not listing a superseded deployment is no evidence that Restate has
    lost it: the operator asks for it by id and, drained, DELETEs it; only when Restate
    answers 404 for the id is it dropped from status without a DELETE."""
    greeter = env.start_example("user-object")
    env.create_service("greeter", greeter.port)
    env.create_deployment("greeter", "v1")
    env.operator.start()
    spec = spec_for("greeter", greeter.port, drainDelaySeconds=1, adminUrl=proxy.url)
    env.create_registration("greeter", spec)
    first = env.wait_reason("greeter", "Registered")["deploymentId"]
    proxy.hide = {first}  # Restate has it; the list the operator reads does not show it
    env.set_version("greeter", "v2")
    second = env.wait_reregistered("greeter", first, 60, "v2 registered")["deploymentId"]
    eventually(
        lambda: deployment_ids(env) == {second}, 30, "the unlisted superseded deployment deleted"
    )
    assert proxy.hidden > 0
    eventually(lambda: ("Normal", "Deregistered") in [e[:2] for e in env.events("greeter")], 10,
               "the Deregistered event")  # fmt: skip

    # Gone from Restate behind the operator's back (404 for its id): forgotten, no DELETE due.
    long_delay = {"spec": {"drainDelaySeconds": 600}}
    env.custom.patch_namespaced_custom_object(
        GROUP, VERSION, env.namespace, PLURAL, "greeter", long_delay
    )
    proxy.hide = {second}
    env.set_version("greeter", "v3")
    third = env.wait_reregistered("greeter", second, 60, "v3 registered")["deploymentId"]
    eventually(
        lambda: [e.get("drainedAt") is not None for e in env.ready("greeter")["status_fields"]
                 ["superseded"]] == [True],
        30,
        "v2's deployment drained, its removal 600 s away",
    )  # fmt: skip
    assert second in deployment_ids(env)  # the delay holds it
    env.server.admin.delete(f"/deployments/{second}?force=true").raise_for_status()
    eventually(lambda: env.server.admin.get(f"/deployments/{second}").status_code == 404, 10,
               "Restate answers 404 for v2's deployment")  # fmt: skip
    final = eventually(
        lambda: (s := env.ready("greeter")["status_fields"])["superseded"] == [] and s,
        30,
        "the deployment Restate answers 404 for dropped from status",
    )
    assert final["deploymentId"] == third and final["supersededDeploymentIds"] == []
    assert deployment_ids(env) == {third}
    eventually(lambda: ("Normal", "Gone") in [e[:2] for e in env.events("greeter")], 10,
               "the Gone event")  # fmt: skip


def test_a_version_entry_the_model_refuses_is_judged_from_restate(env: OperatorEnv) -> None:
    """A status version entry the CRD schema accepts but the operator's model does not (its
    state removed by hand): a Warning names it, and the version is found again by its URI,
    under the same Restate deployment."""
    _, first = env.registered_workload(
        "user-object", "greeter", drainDelaySeconds=0, revisionHistoryLimit=0
    )
    v1, v1_id = first["currentVersion"], first["deploymentId"]
    env.operator.stop()
    edited = {"status": {"versions": [{"hash": v1, "deploymentId": v1_id}]}}
    env.kube.kubectl(
        "patch", "rwl", "greeter", "-n", env.namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(edited),
    )  # fmt: skip
    assert "state" not in version_of(env.workload_status("greeter"), v1)
    env.operator.start()
    fixed = env.wait_workload(
        "greeter",
        lambda s: version_of(s, v1).get("state") == "Current" and ready_reason(s) == "Registered",
        30,
        "v1 current again, judged from Restate",
    )
    assert fixed["deploymentId"] == v1_id and deployment_ids(env) == {v1_id}
    warnings = eventually(
        lambda: [e for e in env.events("greeter") if e[:2] == ("Warning", "VersionStatusInvalid")],
        10,
        "the VersionStatusInvalid warning",
    )
    assert v1 in str(warnings[0][2]) and "state" in str(warnings[0][2])
