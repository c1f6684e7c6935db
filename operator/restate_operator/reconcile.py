"""One reconciliation of a RestateRegistration: from the Deployment and Service to Restate.

How a rollout makes Restate discover the new code (checked against restate-server 1.7.12):
`POST /deployments` without `force` answers 200 with the SAME id for a URI Restate already
has, and does not call /discover again; the query string is ignored in that comparison, and so
are `additional_headers`. A distinct path is a distinct deployment. So the registered URI is
the Service's address plus one path segment per revision,

    http://<service>.<namespace>.svc.<cluster domain>:<port><path>/rev-<marker>

where <marker> hashes the Deployment's pod template together with `useHttp11` and
`additionalHeaders`. Restate SDKs serve their endpoint under any prefix (they match
`.../discover` and `.../invoke/<service>/<handler>` at the end of the path), so the same
pods answer every marker. A changed template gives a new URI: a plain POST creates a new
deployment (201), Restate runs discovery and makes it the latest revision of its services;
invocations pinned to the previous deployment keep their deployment id. We never use `force`
for a new template: it rewrites a deployment in place, under invocations pinned to it.

The superseded deployment is kept in `status.supersededDeploymentIds` (and `status.superseded`,
with why each is still there) and judged from Restate on every pass, as a RestateWorkload's old
versions are: it stays while an unfinished invocation is pinned to it or it is still the latest
deployment of some service, then `drainDelaySeconds` more (an invocation accepted just before
the switch may not be pinned yet); only then is it removed (DELETE ?force=true). It is dropped
from status without a DELETE only when Restate answers 404 for its id (a deployment missing
from `GET /deployments` is asked for by id first). A
rollback to an earlier template gives that template's URI again: if its old deployment is
already gone it is simply registered anew; if it still exists (something was pinned to it)
and is not the latest, it is re-registered with `force: true`, which rediscovers it and makes
it the latest (safe: same URI means same template, so the same code).

Limitation of following a plain Deployment (Restate's own operator avoids it with one
ReplicaSet and Service per version): once the old pods are gone, invocations still pinned to
the previous deployment are served by the new pods, through the old URI.

Idempotent: the endpoint is looked up in Restate before registering, so running this again
(after an operator restart, on the drift timer) registers nothing twice; a registration Restate
lost (data wiped) is registered again. If the services' latest deployment is one this resource
did not register, it reports ConflictingRegistration instead of fighting over it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from restate_operator import k8s
from restate_operator.admin_api import AdminApi, AdminApiError, RestateDeployment
from restate_operator.clock import now, parse, since, stamp
from restate_operator.conditions import Reason
from restate_operator.promote import Conflict, register_or_promote
from restate_operator.settings import Settings
from restate_operator.spec import RegistrationSpec, revision_marker, template_hash


@dataclass
class Outcome:
    """What the reconciliation found: the `Ready` condition and the status fields to write."""

    ready: bool
    reason: Reason
    message: str
    fields: dict[str, Any] = field(default_factory=dict)
    failed: bool = False  # an admin API error: retry with backoff
    registered: RestateDeployment | None = None  # set when a POST /deployments happened
    available_since: datetime.datetime | None = None
    wake_in: float | None = None  # a superseded deployment's drain delay ends then
    events: list[tuple[str, str]] = field(default_factory=list)  # (reason, message), Normal


def endpoint_for(settings: Settings, namespace: str, spec: RegistrationSpec, marker: str) -> str:
    """The Service's address plus a per-revision path segment `/rev-<marker>`."""
    return settings.endpoint(
        spec.service.name, namespace, spec.service.port, f"{spec.clean_path}/rev-{marker}"
    )


def rollout_state(deployment: dict[str, Any]) -> tuple[bool, str, datetime.datetime | None]:
    """(complete and Available, explanation, when it became so)."""
    meta, spec, status = deployment["metadata"], deployment["spec"], deployment.get("status", {})
    wanted = spec.get("replicas", 1)
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    available = conditions.get("Available", {})
    counts = (
        f"replicas {status.get('replicas', 0)}/{wanted}, updated {status.get('updatedReplicas', 0)}"
        f", available {status.get('availableReplicas', 0)}"
    )
    if wanted < 1:
        return False, "the Deployment is scaled to zero", None
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False, "the Deployment controller has not observed the latest spec yet", None
    complete = (
        available.get("status") == "True"
        and status.get("updatedReplicas", 0) == wanted
        and status.get("availableReplicas", 0) >= wanted
        and status.get("replicas", 0) == wanted
    )
    if not complete:
        return False, f"rollout not complete or not Available ({counts})", None
    times = [parse(available.get("lastTransitionTime"))]
    progressing = conditions.get("Progressing", {})
    if progressing.get("reason") == "NewReplicaSetAvailable":
        times.append(parse(progressing.get("lastUpdateTime")))
    became = max((t for t in times if t is not None), default=None)
    return True, f"Available ({counts})", became


def _service_has_port(service: dict[str, Any], port: int) -> bool:
    return any(p.get("port") == port for p in service.get("spec", {}).get("ports") or [])


def _services_fields(deployment: RestateDeployment) -> dict[str, Any]:
    return {
        "services": [
            {"name": s.name, "type": s.type, "handlers": list(s.handlers)}
            for s in deployment.services
        ],
        "serviceNames": ",".join(s.name for s in deployment.services),
    }


async def reconcile(
    settings: Settings,
    namespace: str,
    name: str,
    spec: RegistrationSpec,
    status: dict[str, Any],
    generation: int | None,
    conflict_with: str | None,
) -> Outcome:
    service_name, deployment_name = spec.service.name, spec.deployment.name
    port = spec.service.port
    base = {"observedGeneration": generation}
    if conflict_with:
        return Outcome(
            False,
            Reason.CONFLICTING_REGISTRATION,
            f"Service {service_name}:{port}{spec.path} is already registered "
            f"by RestateRegistration {conflict_with} (created earlier); delete one of the two",
            base,
        )
    service = await k8s.read_service(namespace, service_name)
    if service is None or not _service_has_port(service, port):
        what = "does not exist" if service is None else f"has no port {port}"
        return Outcome(
            False,
            Reason.SERVICE_NOT_FOUND,
            f"Service {namespace}/{service_name} {what}; create it (or fix spec.service)",
            base,
        )
    deployment = await k8s.read_deployment(namespace, deployment_name)
    if deployment is None:
        return Outcome(
            False,
            Reason.DEPLOYMENT_NOT_FOUND,
            f"Deployment {namespace}/{deployment_name} does not exist; create it "
            "(or fix spec.deployment.name)",
            base,
        )
    complete, explanation, available = rollout_state(deployment)
    if not complete:
        if status.get("deploymentId"):  # the previous revision keeps serving
            return Outcome(
                True,
                Reason.ROLLOUT_IN_PROGRESS,
                f"Deployment {deployment_name}: {explanation}; revision "
                f"{status.get('podTemplateHash')} stays registered as {status['deploymentId']}",
                base,
            )
        return Outcome(
            False,
            Reason.DEPLOYMENT_NOT_AVAILABLE,
            f"Deployment {deployment_name}: {explanation}; waiting",
            base,
        )

    pod_template_hash = template_hash(deployment)
    endpoint = endpoint_for(settings, namespace, spec, revision_marker(pod_template_hash, spec))
    admin_url = spec.admin(settings.restate_admin_url)
    ours = {status.get("deploymentId"), *(status.get("supersededDeploymentIds") or [])} - {None}
    try:
        async with AdminApi(admin_url, settings.admin_timeout_seconds) as admin:
            return await _register(
                admin, spec, status, ours, endpoint, pod_template_hash, base, available
            )
    except AdminApiError as error:
        return Outcome(False, Reason(error.reason), str(error), base, failed=True)


async def _register(
    admin: AdminApi,
    spec: RegistrationSpec,
    status: dict[str, Any],
    ours: set[str],
    endpoint: str,
    pod_template_hash: str,
    base: dict[str, Any],
    available: datetime.datetime | None,
) -> Outcome:
    existing = await admin.deployments()
    latest = await admin.latest_deployments()
    try:
        promotion = await register_or_promote(
            admin, endpoint, existing, latest, ours,
            use_http_11=spec.use_http_11, additional_headers=spec.additional_headers,
        )  # fmt: skip
    except Conflict as conflict:
        return Outcome(False, Reason.CONFLICTING_REGISTRATION, str(conflict), base)
    current, registered = promotion.deployment, promotion.registered

    events: list[tuple[str, str]] = []
    superseded, wake_in = await _prune(
        admin, spec, _superseded(status, current.id), {d.id for d in existing}, latest, events
    )
    fields = {
        **base,
        "deploymentId": current.id,
        "endpoint": endpoint,
        "podTemplateHash": pod_template_hash,
        "supersededDeploymentIds": [e["deploymentId"] for e in superseded],
        "superseded": superseded,
        **_services_fields(current),
    }
    if registered is not None or status.get("deploymentId") != current.id:
        fields["registeredAt"] = now()
    services = ", ".join(s.name for s in current.services) or "no services"
    return Outcome(
        True,
        Reason.REGISTERED,
        f"registered as Restate deployment {current.id} ({services}) at {endpoint}",
        fields,
        registered=registered,
        available_since=available,
        wake_in=wake_in,
        events=events,
    )


def _superseded(status: dict[str, Any], current: str) -> list[dict[str, Any]]:
    """The superseded deployments the status knows (with their drain times), plus the one the
    status called current if Restate's latest is now another."""
    entries = {e["deploymentId"]: dict(e) for e in status.get("superseded") or []
               if e.get("deploymentId")}  # fmt: skip
    for deployment_id in [*(status.get("supersededDeploymentIds") or []),
                          status.get("deploymentId")]:  # fmt: skip
        if deployment_id and deployment_id not in entries:
            entries[deployment_id] = {"deploymentId": deployment_id, "supersededAt": stamp()}
    entries.pop(current, None)
    return list(entries.values())


async def _prune(
    admin: AdminApi,
    spec: RegistrationSpec,
    superseded: list[dict[str, Any]],
    existing: set[str],
    latest: dict[str, str],
    events: list[tuple[str, str]],
) -> tuple[list[dict[str, Any]], float | None]:
    """Judges each superseded deployment from Restate: kept while an unfinished invocation is
    pinned to it (counted even when GET /deployments no longer lists it) or it is the latest of
    a service, then for drainDelaySeconds; then removed (DELETE). One GET /deployments does
    not list is asked for by id: forgotten only on Restate's 404, else judged and DELETEd like
    any other. (kept, seconds until a delay ends)."""
    kept: list[dict[str, Any]] = []
    wake_in: float | None = None
    delay = float(spec.drain_delay_seconds)
    for entry in superseded:
        deployment_id = entry["deploymentId"]
        pinned = await admin.unfinished_pinned_invocations(deployment_id)
        latest_for = sorted(s for s, d in latest.items() if d == deployment_id)
        entry["pinnedInvocations"] = pinned
        if pinned or latest_for:
            entry.pop("drainedAt", None)
            entry["message"] = (
                f"{pinned} invocation(s) pinned" if pinned else f"still the latest of {latest_for}"
            )
            kept.append(entry)
            continue
        # Not in GET /deployments is no evidence that Restate lost it: asked for by id, only
        # its 404 means gone (an error answer fails the pass, and the entry stays).
        if deployment_id not in existing and await admin.deployment(deployment_id) is None:
            events.append(("Gone", f"superseded deployment {deployment_id}: Restate answers "
                           "404 for it (nothing pinned); dropped from status"))  # fmt: skip
            continue
        if not entry.get("drainedAt"):
            entry["drainedAt"] = stamp()
            events.append(("Drained", f"superseded deployment {deployment_id}: nothing pinned; "
                           f"removal in {delay:.0f}s"))  # fmt: skip
        remaining = delay - since(entry["drainedAt"])
        if remaining > 0:
            entry["message"] = f"drained; removal in {remaining:.0f}s"
            wake_in = remaining if wake_in is None else min(wake_in, remaining)
            kept.append(entry)
            continue
        await admin.delete(deployment_id)
        events.append(("Deregistered", f"superseded deployment {deployment_id} removed from "
                       "Restate (drained)"))  # fmt: skip
    return kept, wake_in
