"""The operator's pure parts: settings, backoff, revision markers, rollout state, conditions."""

from __future__ import annotations

from typing import Any

import pytest

from restate_operator import __main__ as entry
from restate_operator.admin_api import AdminApi, AdminApiInvalidAnswer, count_of
from restate_operator.conditions import Reason, ready_condition
from restate_operator.handlers import backoff, failure_delay
from restate_operator.reconcile import endpoint_for, rollout_state
from restate_operator.settings import Settings, get_settings
from restate_operator.spec import (
    RegistrationSpec,
    WorkloadSpec,
    parse_registration,
    parse_workload,
    revision_marker,
    template_hash,
    version_hash,
)
from restate_operator.workload import endpoint_of, replicaset_body, replicaset_ready


def deployment(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "a:1"}]}}},
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 2,
            "availableReplicas": 2,
            "conditions": [
                {"type": "Available", "status": "True",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "lastUpdateTime": "2026-01-01T00:00:05Z"},
            ],
            **status,
        },
    }  # fmt: skip


def test_rollout_state() -> None:
    complete, _, since = rollout_state(deployment())
    assert complete and since is not None and since.second == 5
    assert not rollout_state(deployment(observedGeneration=1))[0]
    assert not rollout_state(deployment(updatedReplicas=1))[0]
    assert not rollout_state(deployment(replicas=3))[0]  # old pods still there
    scaled = deployment()
    scaled["spec"]["replicas"] = 0
    assert not rollout_state(scaled)[0]


def test_revision_marker_follows_template_and_options() -> None:
    d = deployment()
    plain = reg({})
    base = revision_marker(template_hash(d), plain)
    changed = deployment()
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "a:2"
    assert revision_marker(template_hash(changed), plain) != base
    assert revision_marker(template_hash(d), reg({"useHttp11": True})) != base
    assert revision_marker(template_hash(d), reg({"additionalHeaders": {"x": "1"}})) != base
    assert revision_marker(template_hash(deployment(replicas=7)), plain) == base  # status ignored
    # The markers of earlier operator versions are kept: no re-registration on upgrade.
    assert base == "26bbac215d"  # what the operator before RestateWorkload computed


def reg(extra: dict[str, Any]) -> RegistrationSpec:
    return parse_registration({"service": {"name": "s"}, "deployment": {"name": "d"}, **extra})


def test_endpoint_template() -> None:
    spec = reg({"service": {"name": "greeter", "port": 9080}, "path": "/restate/"})
    assert endpoint_for(Settings(), "ns", spec, "abc") == (
        "http://greeter.ns.svc.cluster.local:9080/restate/rev-abc"
    )
    local = Settings(endpoint_template="http://127.0.0.1:{port}{path}")
    assert endpoint_for(local, "ns", reg({"service": {"name": "g", "port": 1}}), "x") == (
        "http://127.0.0.1:1/rev-x"
    )
    with pytest.raises(ValueError):
        Settings(endpoint_template="http://{host}:{port}")


def test_endpoint_uses_the_cluster_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    # The chart sets CLUSTER_DOMAIN from its `clusterDomain`.
    monkeypatch.setenv("CLUSTER_DOMAIN", "corp.example")
    get_settings.cache_clear()
    try:
        settings = get_settings()
    finally:
        get_settings.cache_clear()
    spec = reg({"service": {"name": "greeter", "port": 9080}})
    assert endpoint_for(settings, "ns", spec, "abc") == (
        "http://greeter.ns.svc.corp.example:9080/rev-abc"
    )
    workload = parse_workload({"selector": {}, "template": {}, "path": "/r/"})
    assert endpoint_of(settings, "ns", "greeter", workload, "0123456789") == (
        "http://greeter-0123456789.ns.svc.corp.example:9080/r"
    )
    with pytest.raises(ValueError):
        Settings(cluster_domain="http://x/")


def test_backoff_is_exponential_and_capped() -> None:
    get_settings.cache_clear()
    assert [backoff(n) for n in (1, 2, 3, 4, 7, 100)] == [1, 2, 4, 8, 60, 60]


def test_an_unreachable_admin_api_is_retried_every_few_seconds() -> None:
    # Restate starting (or restarting): retry soon, so registration follows its readiness.
    get_settings.cache_clear()
    unreachable = [failure_delay(Reason.ADMIN_API_UNREACHABLE, n) for n in (1, 2, 3, 10, 100)]
    assert unreachable == [1, 2, 2, 2, 2]
    # A refusal (bad spec, discovery failed) still backs off toward a minute.
    assert failure_delay(Reason.ADMIN_API_REJECTED, 7) == 60


def test_condition_transition_time_moves_only_on_flips() -> None:
    first = ready_condition(True, Reason.REGISTERED, "ok", 1, [])
    again = ready_condition(True, Reason.ROLLOUT_IN_PROGRESS, "rolling", 2, first)
    assert again[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert again[0]["reason"] == "RolloutInProgress" and again[0]["observedGeneration"] == 2


def test_entry_point_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_NAMESPACE", "apps")
    get_settings.cache_clear()
    try:
        args = entry.kopf_args()
    finally:
        get_settings.cache_clear()
    assert args[:2] == ["run", "--standalone"]
    assert args[args.index("--namespace") :][:2] == ["--namespace", "apps"]
    assert "http://0.0.0.0:8080/healthz" in args


def workload(**extra: Any) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "g"}},
                "spec": {"containers": [{"name": "c", "image": "a:1"}]}}  # fmt: skip
    return {"selector": {"matchLabels": {"app": "g"}}, "template": template, **extra}


def test_a_version_is_code_and_how_restate_calls_it_not_a_restart_or_replicas() -> None:
    base = version_hash(parse_workload(workload()))
    assert len(base) == 10
    assert version_hash(parse_workload(workload(replicas=5, drainDelaySeconds=1))) == base
    restarted = workload()
    restarted["template"]["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"
    }
    assert version_hash(parse_workload(restarted)) == base
    new_image = workload()
    new_image["template"]["spec"]["containers"][0]["image"] = "a:2"
    assert version_hash(parse_workload(new_image)) != base
    for option in ({"port": 9081}, {"path": "/x"}, {"useHttp11": True},
                   {"additionalHeaders": {"h": "v"}}):  # fmt: skip
        assert version_hash(parse_workload(workload(**option))) != base, option


def test_a_versions_replicaset_selects_only_its_pods() -> None:
    spec = parse_workload(workload(replicas=2))
    body = replicaset_body("ns", "g", "uid-1", spec, "abc", "http://g-abc:9080")
    labels = {
        "app": "g",
        "examples.restate.dev/workload": "g",
        "examples.restate.dev/version": "abc",
    }
    assert body["metadata"]["name"] == "g-abc"
    assert body["spec"]["selector"] == {"matchLabels": labels}
    assert body["spec"]["template"]["metadata"]["labels"] == labels
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert body["metadata"]["annotations"] == {"examples.restate.dev/endpoint": "http://g-abc:9080"}
    assert spec.template["metadata"]["labels"] == {"app": "g"}  # the spec is not changed
    status = {"observedGeneration": 1, "readyReplicas": 2, "availableReplicas": 2}
    ready = {"metadata": {"generation": 1}, "spec": {"replicas": 2}, "status": status}
    assert replicaset_ready(ready, 2) == (True, 2)
    assert replicaset_ready(ready, 3)[0] is False
    assert replicaset_ready({**ready, "status": {"readyReplicas": 2}}, 2)[0] is False


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"rows": []},
        {"rows": None},
        {"rows": [{}]},
        {"rows": [{"count": 0}]},
        {"rows": [{"n": None}]},
        {"rows": [{"n": "some"}]},
        {"rows": [{"n": True}]},
        {"rows": [{"n": -1}]},
        {"rows": [{"n": 0}, {"n": 1}]},
        [],
        "rows",
    ],
)
def test_a_count_answer_without_the_count_is_an_error_not_zero(body: Any) -> None:
    with pytest.raises(AdminApiInvalidAnswer):
        count_of(body, "pinned to dp_x")


def test_a_count_answer_with_the_count() -> None:
    assert count_of({"rows": [{"n": 0}]}, "x") == 0
    assert count_of({"rows": [{"n": 3}]}, "x") == 3
    assert count_of({"rows": [{"n": "2"}]}, "x") == 2


def _serve(answers: dict[str, Any]) -> tuple[Any, str]:
    """A small fake admin endpoint answering 200 with fixed JSON per path (this unit only)."""
    import http.server
    import json
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            content = json.dumps(answers[self.path.split("?")[0]]).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        ("/query", {"rows": []}),
        ("/deployments", {"items": []}),
        ("/services", {"services": [{"name": "S"}]}),
    ],
)
def test_the_admin_client_refuses_answers_of_an_unexpected_shape(path: str, answer: Any) -> None:
    import asyncio

    server, url = _serve({path: answer})
    try:

        async def ask() -> None:
            async with AdminApi(url) as admin:
                if path == "/query":
                    await admin.unfinished_pinned_invocations("dp_abc")
                elif path == "/deployments":
                    await admin.deployments()
                else:
                    await admin.latest_deployments()

        with pytest.raises(AdminApiInvalidAnswer):
            asyncio.run(ask())
    finally:
        server.shutdown()
        server.server_close()


def _crd_defaults(path: Any) -> dict[str, Any]:
    """Top-level spec property -> its schema default, of a CRD file."""
    import yaml

    crd = yaml.safe_load(path.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    properties = schema["properties"]["spec"]["properties"]
    return {key: value["default"] for key, value in properties.items() if "default" in value}


@pytest.mark.parametrize(
    ("crd", "model"),
    [("restateregistrations.yaml", RegistrationSpec), ("restateworkloads.yaml", WorkloadSpec)],
)
def test_the_crd_schema_defaults_are_the_spec_models_defaults(crd: str, model: Any) -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "deploy/helm/restate-examples/crds" / crd
    schema = _crd_defaults(path)
    fields = {
        (info.alias or key): info.get_default(call_default_factory=True)
        for key, info in model.model_fields.items()
        if not info.is_required()
    }
    assert schema, crd
    # Every schema default is the model's; every model default is in the schema (or, for
    # adminUrl, empty on both sides: the operator's RESTATE_ADMIN_URL applies).
    for key, value in schema.items():
        assert fields.get(key) == value, (crd, key, value, fields.get(key))
    missing = {k: v for k, v in fields.items() if k not in schema and v not in ("", {})}
    assert missing == {}, (crd, missing)


def _model_shape(model: Any) -> dict[str, Any]:
    """Field alias -> nested shape (a dict for a model or a list of models, else None)."""
    import typing

    from pydantic import BaseModel

    shape: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        nested: Any = None
        for arg in [info.annotation, *typing.get_args(info.annotation)]:
            for inner in [arg, *typing.get_args(arg)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    nested = _model_shape(inner)
        shape[info.alias or key] = nested
    return shape


def _schema_shape(schema: dict[str, Any]) -> dict[str, Any]:
    shape: dict[str, Any] = {}
    for key, value in schema.get("properties", {}).items():
        inner = value.get("items", value) if value.get("type") == "array" else value
        shape[key] = _schema_shape(inner) if "properties" in inner else None
    return shape


@pytest.mark.parametrize(
    ("crd", "model"),
    [
        ("restateregistrations.yaml", "RegistrationStatus"),
        ("restateworkloads.yaml", "WorkloadStatus"),
    ],
)
def test_the_status_models_are_the_crd_status_schemas(crd: str, model: str) -> None:
    """A field the operator writes but the CRD lacks is pruned by the API server, silently."""
    from pathlib import Path

    import yaml

    from restate_operator import status

    path = Path(__file__).resolve().parents[2] / "deploy/helm/restate-examples/crds" / crd
    schema = yaml.safe_load(path.read_text())["spec"]["versions"][0]["schema"]
    crd_status = schema["openAPIV3Schema"]["properties"]["status"]
    assert _model_shape(getattr(status, model)) == _schema_shape(crd_status)


def test_a_status_patch_with_an_unknown_field_is_refused() -> None:
    from pydantic import ValidationError

    from restate_operator.status import WorkloadStatus, dump

    dump(WorkloadStatus, {"currentVersion": "abc", "paused": None})
    with pytest.raises(ValidationError):
        dump(WorkloadStatus, {"currentVersoin": "abc"})
    with pytest.raises(ValidationError):
        dump(WorkloadStatus, {"versions": [{"hash": "a", "state": "Gone"}]})


# A RestateWorkload status as the operator before typed versions wrote it (camelCase, every
# field of a version the CRD's status schema has): existing objects must read unchanged.
WRITTEN_BEFORE = {
    "currentVersion": "b0f11295bc",
    "versions": [
        {"hash": "b0f11295bc", "state": "Current", "deploymentId": "dp_11",
         "endpoint": "http://w-b0f11295bc.ns.svc.cluster.local:9080", "services": ["Greeter"],
         "replicas": 1, "readyReplicas": 1, "registeredAt": "2026-11-30T10:00:00Z"},
        {"hash": "a1a1a1a1a1", "state": "Draining", "deploymentId": "dp_10",
         "endpoint": "http://w-a1a1a1a1a1.ns.svc.cluster.local:9080", "services": ["Greeter"],
         "replicas": 1, "readyReplicas": 1, "pinnedInvocations": 2,
         "registeredAt": "2026-11-29T10:00:00Z", "drainingSince": "2026-11-30T10:00:00Z",
         "drainedAt": "2026-11-30T10:01:00Z", "message": "2 invocation(s) pinned"},
        {"hash": "c2c2c2c2c2", "state": "Retired", "deploymentId": "dp_09", "replicas": 0,
         "retiredAt": "2026-11-28T10:00:00Z", "message": "in the revision history"},
    ],
}  # fmt: skip


def test_existing_version_entries_read_and_write_through_the_model_unchanged() -> None:
    from restate_operator.status import VersionStatus, versions_of

    versions = versions_of(WRITTEN_BEFORE)
    assert all(isinstance(v, VersionStatus) for v in versions)
    assert [v.deployment_id for v in versions] == ["dp_11", "dp_10", "dp_09"]
    assert versions[1].pinned_invocations == 2 and versions[1].drained_at is not None
    dumped = [v.model_dump(by_alias=True, exclude_none=True) for v in versions]
    assert dumped == WRITTEN_BEFORE["versions"]  # nothing renamed, lost or added


def test_a_version_entry_the_model_refuses_is_left_out_and_described() -> None:
    from restate_operator.status import versions_of

    invalid: list[str] = []
    status = {"versions": [{"hash": "d3d3d3d3d3", "deploymentId": "dp_1"},  # no state
                           *WRITTEN_BEFORE["versions"][:1]]}  # fmt: skip
    assert [v.hash for v in versions_of(status, invalid)] == ["b0f11295bc"]
    assert len(invalid) == 1 and "d3d3d3d3d3" in invalid[0] and "state" in invalid[0]
