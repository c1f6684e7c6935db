"""One reconciliation of a RestateWorkload: versions, their pods, Services and Restate deployments.

A version is the hash of the pod template (without the restart annotation) and of how Restate
calls it (port, path, HTTP/1.1, headers). Each version gets

- a ReplicaSet `<name>-<hash>` (pods labelled examples.restate.dev/workload and /version), and
- a ClusterIP Service `<name>-<hash>` selecting exactly those pods,

both owned by the RestateWorkload (garbage-collected with it). Once the ReplicaSet of the
version the spec describes is Ready (every replica ready and available), its Service address
`http://<name>-<hash>.<namespace>.svc.<cluster domain>:<port><path>` is registered with Restate
(a plain POST: a new deployment, discovery runs, it becomes the latest for its services), and it
is the *current* version. Every other version is *draining*: its pods stay while an invocation
that is not completed is pinned to its Restate deployment (SQL over sys_invocation_status), or
while it is still the latest deployment of a service the current version does not have; then,
`drainDelaySeconds` after it was found drained, it is *removed*: its Restate deployment is
deleted (DELETE ?force=true), its ReplicaSet scaled to 0 and deleted, its Service deleted.

A rollback (the spec describes a version that still exists) scales that version's ReplicaSet
back up and, once Ready, re-registers its URI with `force` so that it becomes the latest again:
the same URI means the same code, and Restate keeps one deployment for it (no duplicate). A
version already removed is simply created and registered anew.

`replicas` (and the scale subresource) applies to the version the spec describes only; draining
versions keep the pods they had. A change of the restart annotation alone keeps the version
(same Service, same Restate deployment): its pods are replaced one at a time, each only once
all replicas are ready again.

The admin API not answering never changes a version's state: nothing is registered, drained or
removed until it answers again, so a rollout waits and then completes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

from restate_operator import k8s
from restate_operator.admin_api import AdminApi, AdminApiError, RestateDeployment, same_endpoint
from restate_operator.clock import now, since, stamp
from restate_operator.conditions import Reason
from restate_operator.promote import Conflict, register_or_promote
from restate_operator.settings import Settings
from restate_operator.spec import RESTART_ANNOTATION, WorkloadSpec, version_hash
from restate_operator.status import VersionState, VersionStatus, versions_of

WORKLOAD_LABEL = "examples.restate.dev/workload"
VERSION_LABEL = "examples.restate.dev/version"
# On each version's ReplicaSet and Service: the URI registered with Restate. With the status
# lost, a version's Restate deployment is still found by it (Restate is the truth, status a cache).
ENDPOINT_ANNOTATION = "examples.restate.dev/endpoint"
KIND = "RestateWorkload"
PENDING: Final = "Pending"
CURRENT: Final = "Current"
DRAINING: Final = "Draining"
REMOVING: Final = "Removing"
# Drained, past its delay: scaled to 0, its Service and Restate deployment kept (the revision
# history, up to revisionHistoryLimit): a rollback to it scales it up under the same deployment.
RETIRED: Final = "Retired"
_OLD: tuple[VersionState, ...] = (DRAINING, REMOVING, RETIRED)
# What a version that becomes current (or pending again) no longer has.
_STALE = ("draining_since", "drained_at", "retired_at", "pinned_invocations", "message")
# Labels of the workload not copied to its Services: they would claim Helm manages them.
_NOT_COPIED = ("app.kubernetes.io/managed-by", "helm.sh/chart")

# (namespace, name, version) -> time.monotonic() when its ReplicaSet was first seen Ready.
_ready_seen: dict[tuple[str, str, str], float] = {}


@dataclass
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass
class WorkloadOutcome:
    ready: bool
    reason: Reason
    message: str
    fields: dict[str, Any]  # the status patch (its versions dumped from `versions`)
    versions: list[VersionStatus] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    failed: bool = False  # an admin API error: retry soon
    busy: bool = False  # a rollout pending or versions draining: poll
    wake_in: float | None = None  # a drain delay ends then
    registered_after: list[float] = field(default_factory=list)  # Ready -> registered, seconds
    drained_after: list[float] = field(default_factory=list)  # draining -> removed, seconds


def object_name(name: str, version: str) -> str:
    return f"{name}-{version}"


def endpoint_of(
    settings: Settings, namespace: str, name: str, spec: WorkloadSpec, version: str
) -> str:
    return settings.endpoint(object_name(name, version), namespace, spec.port, spec.clean_path)


def replicaset_body(
    namespace: str, name: str, uid: str, spec: WorkloadSpec, version: str, endpoint: str
) -> dict[str, Any]:
    ours = {WORKLOAD_LABEL: name, VERSION_LABEL: version}
    template = _copy(spec.template)
    metadata = template.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **ours}
    selector = spec.selector.as_dict()
    selector["matchLabels"] = {**selector.get("matchLabels", {}), **ours}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": object_name(name, version),
            "namespace": namespace,
            "labels": dict(metadata["labels"]),
            "annotations": {ENDPOINT_ANNOTATION: endpoint},
            "ownerReferences": [_owner(name, uid)],
        },
        "spec": {"replicas": spec.replicas, "selector": selector, "template": template},
    }


def service_body(
    namespace: str,
    name: str,
    uid: str,
    labels: dict[str, str],
    spec: WorkloadSpec,
    version: str,
    endpoint: str,
) -> dict[str, Any]:
    ours = {WORKLOAD_LABEL: name, VERSION_LABEL: version}
    copied = {k: v for k, v in labels.items() if k not in _NOT_COPIED}
    port: dict[str, Any] = {"port": spec.port, "targetPort": spec.port, "protocol": "TCP"}
    if spec.use_http_11:
        port |= {"name": "http", "appProtocol": "http"}
    else:  # Restate speaks HTTP/2 cleartext (prior knowledge) to the services
        port |= {"name": "http2", "appProtocol": "kubernetes.io/h2c"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": object_name(name, version),
            "namespace": namespace,
            "labels": {**copied, **ours, "app.kubernetes.io/managed-by": "restate-operator"},
            "annotations": {ENDPOINT_ANNOTATION: endpoint},
            "ownerReferences": [_owner(name, uid)],
        },
        "spec": {"type": "ClusterIP", "selector": ours, "ports": [port]},
    }


def _owner(name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": f"{k8s.GROUP}/{k8s.VERSION}", "kind": KIND, "name": name, "uid": uid,
            "controller": True}  # fmt: skip


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _restart_of(template: dict[str, Any]) -> str | None:
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(RESTART_ANNOTATION)
    return None if value is None else str(value)


def replicaset_ready(rs: dict[str, Any], wanted: int) -> tuple[bool, int]:
    """(every wanted replica ready and available, ready replicas)."""
    status = rs.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    observed = int(status.get("observedGeneration") or 0)
    generation = int(rs.get("metadata", {}).get("generation") or 0)
    complete = (
        wanted >= 1
        and observed >= generation
        and int(rs.get("spec", {}).get("replicas") or 0) == wanted
        and ready >= wanted
        and available >= wanted
    )
    return complete, ready


def selector_string(name: str, spec: WorkloadSpec, version: str) -> str:
    labels = {**spec.selector.match_labels, WORKLOAD_LABEL: name, VERSION_LABEL: version}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class _Pass:
    """The state of one reconciliation."""

    def __init__(
        self,
        settings: Settings,
        namespace: str,
        name: str,
        spec: WorkloadSpec,
        status: dict[str, Any],
    ) -> None:
        self.settings, self.namespace, self.name, self.spec = settings, namespace, name, spec
        self.desired = version_hash(spec)
        self.current: str | None = status.get("currentVersion")
        # The status's versions, typed (status.py): read and written through VersionStatus.
        invalid: list[str] = []
        self.versions: dict[str, VersionStatus] = {v.hash: v for v in versions_of(status, invalid)}
        self.events: list[Event] = [
            Event("Warning", "VersionStatusInvalid", f"left out of the status: {entry}")
            for entry in invalid
        ]
        self.registered_after: list[float] = []
        self.drained_after: list[float] = []
        self.wake_in: float | None = None

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))

    def endpoint(self, version: str) -> str:
        """The URI of the version the spec describes."""
        return endpoint_of(self.settings, self.namespace, self.name, self.spec, version)

    def endpoint_of(self, version: str, rs: dict[str, Any] | None) -> str:
        """A version's URI: from its ReplicaSet (written at creation), else from the status,
        else as the current spec would form it."""
        annotations = ((rs or {}).get("metadata") or {}).get("annotations") or {}
        return str(
            annotations.get(ENDPOINT_ANNOTATION)
            or (known.endpoint if (known := self.versions.get(version)) else None)
            or self.endpoint(version)
        )


async def reconcile_workload(
    settings: Settings,
    namespace: str,
    name: str,
    uid: str,
    labels: dict[str, str],
    spec: WorkloadSpec,
    status: dict[str, Any],
    generation: int | None,
) -> WorkloadOutcome:
    p = _Pass(settings, namespace, name, spec, status)
    selector = f"{WORKLOAD_LABEL}={name}"
    replicasets = {
        rs["metadata"]["labels"].get(VERSION_LABEL): rs
        for rs in await k8s.list_replicasets(namespace, selector)
    }
    services = {
        s["metadata"]["labels"].get(VERSION_LABEL)
        for s in await k8s.list_services(namespace, selector)
    }
    for version in replicasets:  # status lost (a restore, a replace): adopt what exists
        if version and version not in p.versions:
            p.versions[version] = VersionStatus(hash=version, state=DRAINING,
                                                draining_since=stamp())  # fmt: skip
            if version != p.desired:
                p.event("VersionAdopted", f"version {version}: a ReplicaSet the status does "
                        "not list; judged from Restate (its deployment found by URI)")  # fmt: skip

    # 1. The version the spec describes: its Service and ReplicaSet, scaled to spec.replicas.
    desired = p.desired
    uri = p.endpoint(desired)
    if desired not in services:
        await k8s.create_service(
            namespace, service_body(namespace, name, uid, labels, spec, desired, uri)
        )
    rs = replicasets.get(desired)
    if rs is None:
        rs = await k8s.create_replicaset(
            namespace, replicaset_body(namespace, name, uid, spec, desired, uri)
        )
        p.event(
            "VersionCreated",
            f"version {desired}: ReplicaSet and Service {object_name(name, desired)} "
            f"({spec.replicas} replica(s))",
        )
    else:
        await _scale_and_restart(p, rs)
    entry = p.versions.setdefault(desired, VersionStatus(hash=desired, state=PENDING))
    ready, ready_replicas = replicaset_ready(rs, spec.replicas)
    entry.replicas, entry.ready_replicas = spec.replicas, ready_replicas
    if entry.state in _OLD:  # a rollback to a version still there (or in the history)
        _forget(entry, *_STALE)
        entry.state = PENDING
    if ready:
        _ready_seen.setdefault((namespace, name, desired), time.monotonic())
    for version, other in p.versions.items():
        if version != desired:
            found = replicasets.get(version) or {}
            other.ready_replicas = int((found.get("status") or {}).get("readyReplicas") or 0)
            other.replicas = int((found.get("spec") or {}).get("replicas") or 0)

    # 2. Restate: register the desired version once Ready, drain and remove the others.
    conflict: str | None = None
    failure: AdminApiError | None = None
    try:
        admin_url = spec.admin(settings.restate_admin_url)
        async with AdminApi(admin_url, settings.admin_timeout_seconds) as admin:
            existing = {d.id: d for d in await admin.deployments()}
            latest = await admin.latest_deployments()
            _find_deployments(p, existing, replicasets)
            if ready:
                conflict = await _register(p, admin, existing, latest, rs)
            if conflict is None:
                for version in sorted(p.versions):
                    if version not in (p.current, desired):
                        await _drain(p, admin, version, latest, replicasets)
                await _trim_history(p, admin, replicasets)
    except AdminApiError as error:
        failure = error
    return _outcome(p, rs, generation, conflict, failure, ready)


def _find_deployments(
    p: _Pass, existing: dict[str, RestateDeployment], replicasets: dict[str | None, dict[str, Any]]
) -> None:
    """Each version's Restate deployment is the one registered at its URI (whatever the status
    says); a version whose URI Restate does not have keeps the id the status knew, if any, so
    that the invocations pinned to that id are still counted."""
    for version, entry in p.versions.items():
        uri = p.endpoint_of(version, replicasets.get(version))
        found = next((d for d in existing.values() if same_endpoint(d.uri, uri)), None)
        entry.endpoint = uri
        if found is not None:
            entry.deployment_id = found.id


async def _scale_and_restart(p: _Pass, rs: dict[str, Any]) -> None:
    """spec.replicas on the desired version's ReplicaSet; restart annotation: one pod at a time."""
    name = rs["metadata"]["name"]
    spec_replicas = int(rs.get("spec", {}).get("replicas") or 0)
    if spec_replicas != p.spec.replicas:
        await k8s.patch_replicaset(p.namespace, name, {"spec": {"replicas": p.spec.replicas}})
        verb = "scaled back up (rollback)" if spec_replicas == 0 else "scaled"
        p.event("Scaled", f"version {p.desired}: {verb} from {spec_replicas} to {p.spec.replicas}")
        rs.setdefault("spec", {})["replicas"] = p.spec.replicas
        rs.setdefault("metadata", {})["generation"] = int(rs["metadata"].get("generation") or 0) + 1
    wanted = _restart_of(p.spec.template)
    template = rs.get("spec", {}).get("template") or {}
    if wanted == _restart_of(template):
        if wanted is not None and replicaset_ready(rs, p.spec.replicas)[0]:
            await _restart_one_pod(p, wanted)
        return
    annotations = {RESTART_ANNOTATION: wanted}
    patch = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
    await k8s.patch_replicaset(p.namespace, name, patch)
    p.event("Restarting", f"version {p.desired}: restart requested ({wanted}); same version, "
            "same Restate deployment; pods are replaced one at a time")  # fmt: skip


async def _restart_one_pod(p: _Pass, wanted: str) -> None:
    pods = await k8s.list_pods(p.namespace, selector_string(p.name, p.spec, p.desired))
    if any(pod["metadata"].get("deletionTimestamp") for pod in pods):
        return  # one at a time
    stale = [
        pod for pod in pods
        if ((pod["metadata"].get("annotations") or {}).get(RESTART_ANNOTATION)) != wanted
    ]  # fmt: skip
    if stale:
        await k8s.delete_pod(p.namespace, stale[0]["metadata"]["name"])
        p.event("PodRestarted", f"version {p.desired}: pod {stale[0]['metadata']['name']} "
                f"replaced ({len(stale) - 1} left)")  # fmt: skip


async def _register(
    p: _Pass,
    admin: AdminApi,
    existing: dict[str, RestateDeployment],
    latest: dict[str, str],
    rs: dict[str, Any],
) -> str | None:
    """Registers the Ready desired version (or repairs its registration); a conflict message."""
    version, spec = p.desired, p.spec
    entry = p.versions[version]
    endpoint = p.endpoint(version)
    ours = {v.deployment_id for v in p.versions.values() if v.deployment_id}
    try:
        promotion = await register_or_promote(
            admin, endpoint, existing.values(), latest, ours,
            use_http_11=spec.use_http_11, additional_headers=spec.additional_headers,
        )  # fmt: skip
    except Conflict as conflict:
        return str(conflict)
    deployment, registered = promotion.deployment, promotion.registered
    rollback = promotion.promoted
    previous = p.current
    entry.state, entry.deployment_id, entry.endpoint = CURRENT, deployment.id, endpoint
    entry.services = sorted(s.name for s in deployment.services)
    _forget(entry, *_STALE)
    if registered is not None or previous != version:
        entry.registered_at = now()
    names = ", ".join(entry.services) or "no services"
    if registered is not None:
        seen = _ready_seen.get((p.namespace, p.name, version))
        if seen is not None and previous != version:
            p.registered_after.append(time.monotonic() - seen)
        if rollback:
            p.event("RolledBack", f"version {version} is the latest again: {deployment.id} "
                    f"re-registered with force ({names}) at {endpoint}")  # fmt: skip
        elif previous == version:
            p.event("Reregistered", f"version {version}: Restate had lost it; registered "
                    f"again as {deployment.id} ({names})", warning=True)  # fmt: skip
        else:
            p.event("Registered", f"version {version} registered as Restate deployment "
                    f"{deployment.id} ({names}) at {endpoint}")  # fmt: skip
    if previous != version:
        if previous in p.versions:
            old = p.versions[previous]
            old.state, old.draining_since = DRAINING, stamp()
            p.event("Draining", f"version {previous} ({old.deployment_id}) receives no "
                    "new invocations; its pods stay until the invocations pinned to it "
                    f"complete, plus {spec.drain_delay_seconds}s")  # fmt: skip
        p.current = version
    _ready_seen.pop((p.namespace, p.name, version), None)
    return None


async def _drain(
    p: _Pass,
    admin: AdminApi,
    version: str,
    latest: dict[str, str],
    replicasets: dict[str | None, dict[str, Any]],
) -> None:
    """Judges an older version from Restate, on every pass (a version in the history too): the
    invocations pinned to its deployment (counted even if GET /deployments no longer lists it),
    whether it is still the latest of a service, then the drain delay. Drained past the delay,
    it is scaled to 0 and kept in the history (revisionHistoryLimit > 0), else removed."""
    entry = p.versions[version]
    deployment_id = entry.deployment_id
    if entry.state not in _OLD:
        entry.state = DRAINING
        entry.draining_since = entry.draining_since or stamp()
    pinned, latest_for = 0, []
    if deployment_id:
        latest_for = sorted(s for s, d in latest.items() if d == deployment_id)
        pinned = await admin.unfinished_pinned_invocations(deployment_id)
    entry.pinned_invocations = pinned
    if pinned or latest_for:
        entry.drained_at = None
        entry.message = (
            f"{pinned} invocation(s) pinned"
            if pinned
            else f"still the latest deployment of {latest_for} (not in the current version)"
        )
        await _revive(p, version, entry, replicasets)
        return
    if entry.state == RETIRED:
        return
    # No deployment id known and none at its URI: never registered, nothing can be pinned.
    delay = float(p.spec.drain_delay_seconds) if deployment_id else 0.0
    if not entry.drained_at:
        entry.drained_at = stamp()
        if deployment_id:
            p.event("Drained", f"version {version}: no invocation pinned to {deployment_id}; "
                    f"scaled to 0 in {delay:.0f}s")  # fmt: skip
    remaining = delay - since(entry.drained_at)
    if remaining > 0:
        entry.message = f"drained; scaled to 0 in {remaining:.0f}s"
        p.wake_in = min(p.wake_in or remaining, remaining)
        return
    if deployment_id and p.spec.revision_history_limit > 0:
        if int((replicasets.get(version) or {}).get("spec", {}).get("replicas") or 0):
            rs_name = object_name(p.name, version)
            await k8s.patch_replicaset(p.namespace, rs_name, {"spec": {"replicas": 0}})
        kept = f"in the revision history: scaled to 0, {deployment_id} kept"
        entry.state, entry.retired_at, entry.replicas, entry.message = RETIRED, stamp(), 0, kept
        p.drained_after.append(since(entry.draining_since))
        p.event("Retired", f"version {version}: drained, scaled to 0; its Service and Restate "
                f"deployment {deployment_id} stay in the revision history (rollback: same "
                "deployment)")  # fmt: skip
        return
    await _remove(p, admin, version, replicasets, "drained")
    if deployment_id:
        p.drained_after.append(since(entry.draining_since))


async def _revive(
    p: _Pass, version: str, entry: VersionStatus, replicasets: dict[str | None, dict[str, Any]]
) -> None:
    """An old version with pods at 0 (in the history, or adopted so) that Restate still needs
    (pinned invocations, the latest of a service): its pods come back."""
    rs = replicasets.get(version)
    if rs is None or int((rs.get("spec") or {}).get("replicas") or 0) > 0:
        if entry.state == RETIRED:
            entry.state, entry.draining_since, entry.retired_at = DRAINING, stamp(), None
        return
    replicas = max(1, p.spec.replicas)
    await k8s.patch_replicaset(p.namespace, object_name(p.name, version),
                               {"spec": {"replicas": replicas}})  # fmt: skip
    entry.state, entry.draining_since, entry.replicas = DRAINING, stamp(), replicas
    entry.retired_at = None
    p.event("Revived", f"version {version}: Restate still needs it ({entry.message}); "
            f"scaled from 0 to {replicas}", warning=True)  # fmt: skip


async def _trim_history(
    p: _Pass,
    admin: AdminApi,
    replicasets: dict[str | None, dict[str, Any]],
) -> None:
    """Past revisionHistoryLimit the oldest versions of the history go, Restate first."""
    history = sorted(
        (v for v in p.versions.values() if v.state == RETIRED),
        key=lambda v: (v.retired_at or "", v.hash),
    )
    for entry in history[: max(0, len(history) - p.spec.revision_history_limit)]:
        limit = p.spec.revision_history_limit
        await _remove(p, admin, entry.hash, replicasets,
                      f"past revisionHistoryLimit {limit}")  # fmt: skip


async def _remove(
    p: _Pass,
    admin: AdminApi,
    version: str,
    replicasets: dict[str | None, dict[str, Any]],
    why: str,
) -> None:
    """The Restate deployment (its DELETE answered) first, then the pods, then the Service.
    The DELETE goes to a known id even if GET /deployments did not list it (no evidence that
    Restate has lost it); Restate's 404 for one already gone is fine."""
    deployment_id = p.versions[version].deployment_id
    if deployment_id:
        await admin.delete(deployment_id)
    rs_name = object_name(p.name, version)
    if version in replicasets:
        await k8s.patch_replicaset(p.namespace, rs_name, {"spec": {"replicas": 0}})
        await k8s.delete_replicaset(p.namespace, rs_name)
    await k8s.delete_service(p.namespace, rs_name)
    p.event("VersionRemoved", f"version {version} ({why}): Restate deployment "
            f"{deployment_id or '-'} deleted, then ReplicaSet and Service {rs_name}")  # fmt: skip
    del p.versions[version]


_ORDER = {CURRENT: 0, PENDING: 1, DRAINING: 2, REMOVING: 3, RETIRED: 4}


def _forget(entry: VersionStatus, *fields: str) -> None:
    """Clears fields of a version's status (absent from the status written)."""
    for name in fields:
        setattr(entry, name, None)


def _listed(p: _Pass) -> list[VersionStatus]:
    """Current, pending, draining versions, then the history newest first."""
    history = sorted(
        (v for v in p.versions.values() if v.state == RETIRED),
        key=lambda v: (v.retired_at or "", v.hash),
        reverse=True,
    )
    others = sorted(
        (v for v in p.versions.values() if v.state != RETIRED),
        key=lambda v: (_ORDER.get(v.state, 9), v.draining_since or "", v.hash),
    )
    return [*others, *history]


def _outcome(
    p: _Pass,
    rs: dict[str, Any],
    generation: int | None,
    conflict: str | None,
    failure: AdminApiError | None,
    ready: bool,
) -> WorkloadOutcome:
    versions = _listed(p)
    draining = sum(1 for v in versions if v.state in (DRAINING, REMOVING))
    history = [v.hash for v in versions if v.state == RETIRED]
    current = p.versions.get(p.current or "")
    rs_status = rs.get("status") or {}
    fields: dict[str, Any] = {
        "observedGeneration": generation,
        "currentVersion": p.current if current else None,
        "desiredVersion": p.desired,
        "versions": [v.model_dump(by_alias=True, exclude_none=True) for v in versions],
        "drainingVersions": draining,
        "historyVersions": len(history),
        "history": history,
        "replicas": int(rs_status.get("replicas") or 0),
        "readyReplicas": int(rs_status.get("readyReplicas") or 0),
        "selector": selector_string(p.name, p.spec, p.desired),
        "deploymentId": current.deployment_id if current else None,
        "endpoint": current.endpoint if current else None,
    }
    waiting = f"version {p.desired}: {fields['readyReplicas']}/{p.spec.replicas} ready"
    busy = p.current != p.desired or draining > 0
    if conflict:
        result = (False, Reason.CONFLICTING_REGISTRATION, conflict)
    elif failure is not None:
        serving = f"; version {p.current} keeps serving" if current else ""
        result = (False, Reason(failure.reason), f"{failure}{serving}")
    elif current is None:
        result = (False, Reason.VERSION_NOT_READY, f"{waiting}; nothing registered yet")
    elif p.current != p.desired:
        stays = f"version {p.current} ({current.deployment_id}) stays current"
        result = (True, Reason.ROLLOUT_IN_PROGRESS, f"{waiting}; {stays}")
    else:
        services = ", ".join(current.services or []) or "no services"
        tail = f"; {draining} older version(s) draining" if draining else ""
        result = (True, Reason.REGISTERED, f"version {p.current} registered as "
                  f"{current.deployment_id} ({services}){tail}")  # fmt: skip
    return WorkloadOutcome(
        ready=result[0],
        reason=result[1],
        message=result[2],
        fields=fields,
        versions=versions,
        events=p.events,
        failed=failure is not None or conflict is not None,
        busy=busy,
        wake_in=p.wake_in,
        registered_after=p.registered_after,
        drained_after=p.drained_after,
    )
