"""kopf handlers: one daemon per RestateRegistration and per RestateWorkload (one engine,
`run_daemon`), watches that wake them, and deletion.

Each RestateRegistration gets a daemon that reconciles (see `reconcile.py`) and then sleeps:
after a success for DRIFT_CHECK_SECONDS (the drift check: it finds a registration Restate lost
and repairs it), while the admin API does not answer for UNREACHABLE_RETRY_SECONDS (2 s: Restate
is starting, and nothing tells us when it is ready but its answer), after a refusal for a capped
exponential backoff (1 s doubling to 60 s), and when blocked (missing Service/Deployment,
rollout in progress, conflict) until an event wakes it. Changes of the resource, of its
Deployment or Service, wake it at once. A RestateWorkload's daemon (see `workload.py`) polls
every DRAIN_POLL_SECONDS while a rollout is pending or versions drain (sooner when a drain
delay ends); its own ReplicaSets wake it; the pause annotation stops it touching anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import kopf

from restate_operator import clock, k8s, metrics
from restate_operator.admin_api import AdminApi, AdminApiError, same_endpoint
from restate_operator.conditions import Reason, ready_condition, set_condition
from restate_operator.reconcile import Outcome, reconcile
from restate_operator.settings import get_settings
from restate_operator.spec import RegistrationOptions, parse_registration, parse_workload
from restate_operator.status import Deletion, WaitingOn, versions_of
from restate_operator.workload import (
    ENDPOINT_ANNOTATION,
    KIND,
    VERSION_LABEL,
    WORKLOAD_LABEL,
    WorkloadOutcome,
    reconcile_workload,
)

GROUP, VERSION, PLURAL, WORKLOADS = k8s.GROUP, k8s.VERSION, k8s.PLURAL, k8s.WORKLOADS
FINALIZER = "examples.restate.dev/registration"
# `examples.restate.dev/reconcile: disabled` on a RestateWorkload pauses it (as Restate's
# operator's `restate.dev/reconcile: disabled`): nothing is created, scaled, registered or
# removed while it is set, deletion included; status.paused and the Paused condition say so.
PAUSE_ANNOTATION = "examples.restate.dev/reconcile"


def _paused(meta: Any) -> bool:
    annotations = meta.get("annotations") or {}
    return str(annotations.get(PAUSE_ANNOTATION, "")).lower() == "disabled"


DRAIN_POLL_SECONDS = 2.0

# (namespace, name) of each running daemon -> the event that wakes it up.
_wakeups: dict[tuple[str | None, str], asyncio.Event] = {}
_workload_wakeups: dict[tuple[str | None, str], asyncio.Event] = {}
# (plural, namespace, name) -> last metadata.generation seen.
_generations: dict[tuple[str, str | None, str], Any] = {}
# (namespace, name) -> whether the pause annotation was set, last seen.
_pauses: dict[tuple[str | None, str], bool] = {}
_QUIET_HANDLERS = (
    "registration_changed",
    "deployment_changed",
    "service_changed",
    "workload_changed",
    "replicaset_changed",
)


class _QuietWatchHandlers(logging.Filter):
    """Drops kopf's "Handler 'x' succeeded." lines of the wake-up handlers (one per event)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (message.endswith("succeeded.") and any(h in message for h in _QUIET_HANDLERS))


def backoff(failures: int) -> float:
    settings = get_settings()
    exponent = min(max(failures - 1, 0), 30)
    return float(min(settings.backoff_initial_seconds * 2**exponent, settings.backoff_max_seconds))


def failure_delay(reason: str, failures: int) -> float:
    """The wait before retrying after the `failures`-th failure in a row with this reason."""
    delay = backoff(failures)
    if reason == Reason.ADMIN_API_UNREACHABLE:
        return min(delay, get_settings().unreachable_retry_seconds)
    return delay


def _wake(namespace: str | None, names: Any = None) -> None:
    for (ns, name), event in list(_wakeups.items()):
        if ns == namespace and (names is None or name in names):
            event.set()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    own = get_settings()
    # Namespaced and least privilege: no cluster-wide watches of CRDs or namespaces.
    settings.scanning.disabled = True
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="examples.restate.dev"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="examples.restate.dev", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our own events only, plus kopf's warnings
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    logging.getLogger("kopf.objects").addFilter(_QuietWatchHandlers())
    k8s.api_client()
    metrics.serve(own.bind_host, own.metrics_port)
    logger.info(
        "restate operator started",
        extra={"admin_url": own.restate_admin_url, "namespace": own.watch_namespace or "*"},
    )


# --------------------------------------------------------------------------- indices


@kopf.index(GROUP, VERSION, PLURAL)
def registrations_by_target(
    namespace: str | None, name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[tuple[str | None, str, str], str]:
    """(namespace, kind, name) of the referenced Service and Deployment -> registration."""
    parsed = parse_registration(spec)
    return {
        (namespace, "service", parsed.service.name): name,
        (namespace, "deployment", parsed.deployment.name): name,
    }


@kopf.index(GROUP, VERSION, PLURAL)
def registrations_by_endpoint(
    namespace: str | None, name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[tuple[str | None, str, int, str], tuple[str, str]]:
    """The Service address a registration claims -> (creationTimestamp, name)."""
    parsed = parse_registration(spec)
    key = (namespace, parsed.service.name, parsed.service.port, parsed.clean_path)
    return {key: (meta.get("creationTimestamp", ""), name)}


# --------------------------------------------------------------------------- wake-ups


@kopf.on.event(GROUP, VERSION, PLURAL)
def registration_changed(
    type: str, namespace: str | None, name: str, meta: kopf.Meta, **_: Any
) -> None:
    # A new spec (generation) wakes the daemons of the namespace: the resource's own, and any
    # that conflicted with it. Status-only changes (our own patches) wake nobody.
    if _new_generation(PLURAL, type, namespace, name, meta):
        _wake(namespace)


def _new_generation(
    plural: str, type: str | None, namespace: str | None, name: str, meta: Any
) -> bool:
    key = (plural, namespace, name)
    generation = meta.get("generation")
    changed = type in ("DELETED", None) or _generations.get(key) != generation
    if type == "DELETED":
        _generations.pop(key, None)
    else:
        _generations[key] = generation
    return changed


@kopf.on.event("apps", "v1", "deployments")
def deployment_changed(namespace: str | None, name: str, **kwargs: Any) -> None:
    index: kopf.Index[Any, str] = kwargs["registrations_by_target"]
    _wake(namespace, set(index.get((namespace, "deployment", name), [])))


@kopf.on.event("", "v1", "services")
def service_changed(namespace: str | None, name: str, **kwargs: Any) -> None:
    index: kopf.Index[Any, str] = kwargs["registrations_by_target"]
    _wake(namespace, set(index.get((namespace, "service", name), [])))


# --------------------------------------------------------------------------- the daemon


def _conflict(
    namespace: str | None, name: str, spec: Any, meta: Any, index: kopf.Index[Any, tuple[str, str]]
) -> str | None:
    """The name of an older registration of the same Service address, if any."""
    parsed = parse_registration(spec)
    key = (namespace, parsed.service.name, parsed.service.port, parsed.clean_path)
    mine = (meta.get("creationTimestamp", ""), name)
    claims = sorted(set(index.get(key, [])) | {mine})
    return claims[0][1] if claims[0] != mine else None


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def registration_daemon(
    namespace: str | None,
    name: str,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    by_endpoint: kopf.Index[Any, tuple[str, str]] = kwargs["registrations_by_endpoint"]
    assert namespace is not None  # the resource is namespaced
    settings = get_settings()
    status: dict[str, Any] = dict(body.get("status") or {})

    async def once() -> Pass:
        nonlocal status
        started = time.monotonic()
        spec, meta = dict(body.spec), body.meta
        outcome = await reconcile(
            settings,
            namespace,
            name,
            parse_registration(spec),
            status,
            meta.get("generation"),
            _conflict(namespace, name, spec, meta, by_endpoint),
        )
        status = await _record(body, namespace, name, status, outcome, started, logger)
        # Registered: the drift check (sooner if a superseded deployment's drain delay ends).
        # Blocked (no Service, rollout, conflict): a watch event wakes us when that changes.
        wait = min(settings.drift_check_seconds, outcome.wake_in or math.inf)
        return Pass(outcome.failed, str(outcome.reason), wait)

    try:
        await run_daemon("RestateRegistration", (namespace, name), _wakeups, stopped, logger, once)
    finally:
        metrics.set_ready(namespace, name, False)


@dataclass(frozen=True)
class Pass:
    """What one reconciliation tells the engine: failed (and why), else when to come back."""

    failed: bool
    reason: str
    wait: float


async def run_daemon(
    kind: str,
    key: tuple[str | None, str],
    wakeups: dict[tuple[str | None, str], asyncio.Event],
    stopped: kopf.DaemonStopped,
    logger: kopf.Logger,
    once: Callable[[], Awaitable[Pass]],
) -> None:
    """The one daemon engine of both kinds: reconcile, then sleep until woken (a watch event)
    or until the next pass is due: `Pass.wait` after a success, the short retry while the admin
    API does not answer, the capped exponential backoff after a refusal or an exception."""
    wakeup = wakeups.setdefault(key, asyncio.Event())
    failures = 0
    try:
        while not stopped:
            wakeup.clear()
            started = time.monotonic()
            try:
                result = await once()
                failures = failures + 1 if result.failed else 0
                delay = failure_delay(result.reason, failures) if result.failed else result.wait
            except Exception as error:  # a bug or an API server hiccup: log, back off, go on
                logger.exception(f"reconciliation failed: {error}")
                metrics.RECONCILES.labels("error").inc()
                metrics.ERRORS.labels("InternalError").inc()
                failures += 1
                delay = backoff(failures)
            metrics.RECONCILE_DURATION.labels(kind).observe(time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(wakeup, stopped), timeout=max(delay, 0.1))
    finally:
        wakeups.pop(key, None)


async def _either(wakeup: asyncio.Event, stopped: kopf.DaemonStopped) -> None:
    waits = [asyncio.ensure_future(wakeup.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


async def _record(
    body: kopf.Body,
    namespace: str,
    name: str,
    status: dict[str, Any],
    outcome: Outcome | WorkloadOutcome,
    started: float,
    logger: kopf.Logger,
) -> dict[str, Any]:
    """Writes status (what changed, checked against the kind's status model), metrics, logs
    and Events (each step, each change of the Ready reason) for one reconciliation of either
    kind; returns the status as now written."""
    workload = isinstance(outcome, WorkloadOutcome)
    previous = status.get("conditions") or []
    old: dict[str, Any] = next((c for c in previous if c.get("type") == "Ready"), {})
    generation = outcome.fields.get("observedGeneration")
    conditions = ready_condition(
        outcome.ready, outcome.reason, outcome.message, generation, previous
    )
    patch = dict(outcome.fields)
    if isinstance(outcome, WorkloadOutcome):
        conditions = _workload_conditions(body, status, outcome, conditions, generation)
        patch["paused"] = None
    patch["conditions"] = conditions
    live = dict(body.get("status") or {})  # a status wiped meanwhile is written again
    changed = {k: v for k, v in patch.items() if status.get(k) != v or live.get(k) != v}
    if changed:
        await k8s.patch_status(namespace, name, changed, plural=WORKLOADS if workload else PLURAL)
    status = {k: v for k, v in {**status, **patch}.items() if v is not None}

    result = "error" if outcome.failed else ("ok" if outcome.ready else "pending")
    metrics.RECONCILES.labels(result).inc()
    if not outcome.ready:
        metrics.ERRORS.labels(str(outcome.reason)).inc()
    if isinstance(outcome, WorkloadOutcome):
        states: dict[str, int] = {}
        for version in outcome.versions:
            states[version.state] = states.get(version.state, 0) + 1
        pinned = {v.hash: v.pinned_invocations or 0 for v in outcome.versions}
        metrics.set_workload(namespace, name, states, pinned)
        for seconds in outcome.registered_after:
            metrics.READY_TO_REGISTERED.observe(seconds)
        for seconds in outcome.drained_after:
            metrics.DRAIN_DURATION.observe(seconds)
        events = [(e.type, e.reason, e.message) for e in outcome.events]
        warning = outcome.failed
        registered = False
    else:
        metrics.set_ready(namespace, name, outcome.ready)
        events = [("Normal", reason, message) for reason, message in outcome.events]
        warning = not (outcome.ready or outcome.reason == Reason.DEPLOYMENT_NOT_AVAILABLE)
        registered = outcome.registered is not None

    for kind, reason, message in events:
        kopf.event(body, type=kind, reason=reason, message=message)
        (logger.warning if kind == "Warning" else logger.info)(f"{reason}: {message}")
    if registered and isinstance(outcome, Outcome):
        _registered(body, outcome, started, logger)
    # A change of the Ready reason (or of a failure's message) is an Event; a registration
    # has had its own (Registered) above.
    if (old.get("reason"), old.get("message")) != (str(outcome.reason), outcome.message) and (
        not registered
    ):
        if old.get("reason") != str(outcome.reason) or warning:
            kopf.event(
                body,
                type="Warning" if warning else "Normal",
                reason=str(outcome.reason),
                message=outcome.message,
            )
        (logger.warning if warning else logger.info)(f"{outcome.reason}: {outcome.message}")
    return status


def _workload_conditions(
    body: kopf.Body,
    status: dict[str, Any],
    outcome: WorkloadOutcome,
    conditions: list[dict[str, Any]],
    generation: int | None,
) -> list[dict[str, Any]]:
    """RestateWorkload's conditions besides Ready: `Reconciling` (kstatus: `helm
    install/upgrade --wait` waits until the version the spec describes is registered, not for
    older versions to drain) and `Paused` False once resumed."""
    fields = outcome.fields
    rolling = fields.get("currentVersion") != fields.get("desiredVersion")
    conditions = set_condition(
        conditions,
        "Reconciling",
        rolling,
        str(outcome.reason) if rolling else "Current",
        outcome.message if rolling else f"version {fields.get('currentVersion')} is current",
        generation,
    )
    if status.get("paused"):  # resumed
        conditions = set_condition(conditions, "Paused", False, "ReconcileEnabled",
                                   "reconciliation resumed")  # fmt: skip
        kopf.event(body, type="Normal", reason="Resumed", message="reconciliation resumed")
    return conditions


def _registered(body: kopf.Body, outcome: Outcome, started: float, logger: kopf.Logger) -> None:
    """RestateRegistration registered a deployment: its metric, Event and log line."""
    assert outcome.registered is not None
    metrics.ADMIN_CALLS.labels("registered").inc()
    latency = None
    created = clock.parse(body.meta.get("creationTimestamp"))
    since = outcome.available_since
    # Only a Deployment that became Available after the resource existed is timed. Both
    # timestamps have whole seconds: in the same second the order is unknown, so skip it.
    if since is not None and (created is None or since > created):
        latency = clock.since(since)
        metrics.AVAILABLE_TO_REGISTERED.observe(latency)
    kopf.event(body, type="Normal", reason="Registered", message=outcome.message)
    logger.info(
        outcome.message,
        extra={
            "deployment_id": outcome.registered.id,
            "available_to_registered_seconds": latency,
            "reconcile_seconds": round(time.monotonic() - started, 3),
        },
    )


# --------------------------------------------------------------------------- deletion


def _age(meta: Any) -> float:
    """Seconds since deletion was requested."""
    return clock.since(meta.get("deletionTimestamp"))


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete_registration(
    namespace: str | None,
    name: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    body: kopf.Body,
    retry: int,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """The RestateRegistration's deployment(s): see `_remove_from_restate`."""
    assert namespace is not None
    ids = [
        i for i in [status.get("deploymentId"), *(status.get("supersededDeploymentIds") or [])] if i
    ]
    metrics.set_ready(namespace, name, False)
    await _remove_from_restate(
        body, PLURAL, namespace, name, parse_registration(spec), status, meta, ids, retry, logger
    )


async def _remove_from_restate(
    body: kopf.Body,
    plural: str,
    namespace: str,
    name: str,
    options: RegistrationOptions,
    status: Any,
    meta: Any,
    ids: list[str],
    retry: int,
    logger: kopf.Logger,
    labels: dict[str, str] | None = None,
) -> None:
    """Drain: wait (at most drainTimeoutSeconds) until no unfinished invocation is pinned to
    the deployment(s), then remove them with force. Force: remove at once. Orphan: leave them.
    If the admin API stays unreachable, deletion gives up after the drain timeout plus
    FORCE_DELETION_TIMEOUT_SECONDS, leaving the Restate deployment behind (Warning event)."""
    settings = get_settings()
    policy = options.deletion_policy
    labels = labels or {}  # deployment id -> version, for the status
    if not ids:
        return
    if policy == "Orphan":
        kopf.event(body, type="Normal", reason="Orphaned", message=f"left in Restate: {ids}")
        return
    elapsed = _age(meta)
    drain_timeout = float(options.drain_timeout_seconds) if policy == "Drain" else 0.0
    admin_url = options.admin(settings.restate_admin_url)
    try:
        async with AdminApi(admin_url, settings.admin_timeout_seconds) as admin:
            if elapsed < drain_timeout:
                counts = {i: await admin.unfinished_pinned_invocations(i) for i in ids}
                pinned = sum(counts.values())
                if pinned:
                    waiting = {i: n for i, n in counts.items() if n}
                    message = (
                        f"draining: {pinned} unfinished invocation(s) pinned to {waiting}; "
                        f"forced removal in {drain_timeout - elapsed:.0f}s"
                    )
                    # What the deletion waits on: which deployments, how many invocations,
                    # until when (then Force).
                    deletion = Deletion(
                        policy=policy,
                        waiting_on=[
                            WaitingOn(deployment_id=i, version=labels.get(i), pinned_invocations=n)
                            for i, n in waiting.items()
                        ],
                        pinned_invocations=pinned,
                        force_at=clock.later(meta.get("deletionTimestamp"), drain_timeout),
                        message=message,
                    ).model_dump(by_alias=True, exclude_none=True)
                    await k8s.patch_status(
                        namespace,
                        name,
                        {
                            "deletion": deletion,
                            "conditions": ready_condition(
                                False, Reason.DRAINING, message, None, status.get("conditions")
                            ),
                        },
                        plural=plural,
                    )
                    raise kopf.TemporaryError(
                        message, delay=min(DRAIN_POLL_SECONDS, drain_timeout - elapsed)
                    )
            elif policy == "Drain":
                kopf.event(
                    body,
                    type="Warning",
                    reason="DrainTimeout",
                    message=f"drain timeout ({drain_timeout:.0f}s) passed: removing {ids} by force",
                )
            for deployment_id in ids:
                await admin.delete(deployment_id)
    except AdminApiError as error:
        if elapsed >= drain_timeout + settings.force_deletion_timeout_seconds:
            kopf.event(
                body,
                type="Warning",
                reason="RestateDeploymentLeftBehind",
                message=f"gave up removing {ids} from Restate: {error}",
            )
            return
        kopf.event(body, type="Warning", reason=error.reason, message=str(error))
        delay = failure_delay(error.reason, retry + 1)
        raise kopf.TemporaryError(str(error), delay=delay) from None
    kopf.event(body, type="Normal", reason="Deregistered", message=f"removed from Restate: {ids}")
    logger.info(f"removed Restate deployment(s) {ids} ({policy})")


# --------------------------------------------------------------------------- RestateWorkload


def _wake_workload(namespace: str | None, name: str | None = None) -> None:
    for (ns, workload), event in list(_workload_wakeups.items()):
        if ns == namespace and (name is None or workload == name):
            event.set()


@kopf.on.event(GROUP, VERSION, WORKLOADS)
def workload_changed(
    type: str, namespace: str | None, name: str, meta: kopf.Meta, **_: Any
) -> None:
    # A new spec (a template, replicas through the scale subresource) or the pause annotation
    # set or removed wakes its daemon; our own status patches do not.
    paused = _paused(meta)
    toggled = _pauses.get((namespace, name), paused) != paused
    _pauses[(namespace, name)] = paused
    if type == "DELETED":
        _pauses.pop((namespace, name), None)
    if _new_generation(WORKLOADS, type, namespace, name, meta) or toggled:
        _wake_workload(namespace, name)


@kopf.on.event("apps", "v1", "replicasets", labels={WORKLOAD_LABEL: kopf.PRESENT})
def replicaset_changed(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
    _wake_workload(namespace, labels.get(WORKLOAD_LABEL))


@kopf.daemon(GROUP, VERSION, WORKLOADS, cancellation_timeout=5.0)
async def workload_daemon(
    namespace: str | None,
    name: str,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Reconciles one RestateWorkload (workload.py), then sleeps: DRAIN_POLL_SECONDS while a
    rollout is pending or versions drain (or until a drain delay ends), the short retry while
    the admin API does not answer, the backoff after a refusal, else DRIFT_CHECK_SECONDS."""
    assert namespace is not None
    settings = get_settings()
    status: dict[str, Any] = dict(body.get("status") or {})

    async def once() -> Pass:
        nonlocal status
        started, meta = time.monotonic(), body.meta
        if _paused(meta):
            status = await _record_paused(body, namespace, name, status, logger)
            return Pass(False, "Paused", settings.drift_check_seconds)
        outcome = await reconcile_workload(
            settings,
            namespace,
            name,
            str(meta.get("uid")),
            dict(meta.get("labels") or {}),
            parse_workload(body.spec),
            status,
            meta.get("generation"),
        )
        status = await _record(body, namespace, name, status, outcome, started, logger)
        if outcome.busy:
            wait = min(settings.drain_poll_seconds, outcome.wake_in or math.inf)
        else:
            wait = min(settings.drift_check_seconds, outcome.wake_in or math.inf)
        return Pass(outcome.failed, str(outcome.reason), wait)

    try:
        await run_daemon(KIND, (namespace, name), _workload_wakeups, stopped, logger, once)
    finally:
        metrics.set_workload(namespace, name, {}, {})


async def _record_paused(
    body: kopf.Body, namespace: str, name: str, status: dict[str, Any], logger: kopf.Logger
) -> dict[str, Any]:
    """Paused: only the status says so (nothing else is touched)."""
    message = f"reconciliation paused by the annotation {PAUSE_ANNOTATION}=disabled"
    conditions = set_condition(
        status.get("conditions"), "Paused", True, "ReconcileDisabled", message
    )
    live = dict(body.get("status") or {})
    if not status.get("paused") or not live.get("paused"):
        await k8s.patch_status(namespace, name, {"paused": True, "conditions": conditions},
                               plural=WORKLOADS)  # fmt: skip
        kopf.event(body, type="Normal", reason="Paused", message=message)
        logger.info(f"Paused: {message}")
    return {**status, "paused": True, "conditions": conditions}


@kopf.on.delete(GROUP, VERSION, WORKLOADS)
async def delete_workload(
    namespace: str | None,
    name: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    body: kopf.Body,
    retry: int,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Every version's Restate deployment, by the deletion policy (`_remove_from_restate`);
    the pods keep serving meanwhile. The ReplicaSets and Services go with the resource
    (owner references: the garbage collector deletes them once the finalizer is removed)."""
    assert namespace is not None
    options = parse_workload(spec)
    if _paused(meta):
        message = f"deletion paused: remove the annotation {PAUSE_ANNOTATION} to go on"
        deletion = Deletion(policy=options.deletion_policy, message=message)
        patch = {"deletion": deletion.model_dump(by_alias=True, exclude_none=True)}
        await k8s.patch_status(namespace, name, patch, plural=WORKLOADS)
        raise kopf.TemporaryError(message, delay=get_settings().drift_check_seconds)
    labels = {v.deployment_id: v.hash for v in versions_of(status) if v.deployment_id}
    labels.update(await _deployments_by_uri(namespace, name, options))
    await _remove_from_restate(
        body, WORKLOADS, namespace, name, options, status, meta, list(labels), retry, logger,
        labels,
    )  # fmt: skip
    metrics.set_workload(namespace, name, {}, {})


async def _deployments_by_uri(
    namespace: str, name: str, options: RegistrationOptions
) -> dict[str, str]:
    """Deployment id -> version of every version's ReplicaSet whose URI Restate has (the
    status may have been lost: Restate is the truth). Empty if the admin API does not answer:
    the ids the status knows are used then."""
    uris = {
        str((rs["metadata"].get("annotations") or {}).get(ENDPOINT_ANNOTATION) or ""):
        rs["metadata"]["labels"].get(VERSION_LABEL, "")
        for rs in await k8s.list_replicasets(namespace, f"{WORKLOAD_LABEL}={name}")
    }  # fmt: skip
    uris.pop("", None)
    settings = get_settings()
    try:
        async with AdminApi(options.admin(settings.restate_admin_url),
                            settings.admin_timeout_seconds) as admin:  # fmt: skip
            deployments = await admin.deployments()
    except AdminApiError:
        return {}
    return {d.id: uris[uri] for d in deployments for uri in uris if same_endpoint(d.uri, uri)}
