"""The conditions of both kinds (`Ready`; a RestateWorkload also has `Reconciling` and
`Paused`) and the reasons of `Ready`."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from restate_operator.clock import now


class Reason(StrEnum):
    REGISTERED = "Registered"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"  # the previous revision stays registered
    DEPLOYMENT_NOT_FOUND = "DeploymentNotFound"
    DEPLOYMENT_NOT_AVAILABLE = "DeploymentNotAvailable"
    SERVICE_NOT_FOUND = "ServiceNotFound"
    ADMIN_API_UNREACHABLE = "AdminApiUnreachable"
    ADMIN_API_REJECTED = "AdminApiRejected"
    ADMIN_API_INVALID_ANSWER = "AdminApiInvalidAnswer"  # 2xx without what was asked
    CONFLICTING_REGISTRATION = "ConflictingRegistration"
    DRAINING = "Draining"
    # RestateWorkload
    VERSION_NOT_READY = "VersionNotReady"  # no version registered yet; waiting for its pods


def set_condition(
    conditions: list[dict[str, Any]] | None,
    kind: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """The conditions list with `kind` set; lastTransitionTime only moves when status flips."""
    value = "True" if status else "False"
    old = next((c for c in conditions or [] if c.get("type") == kind), None)
    transition = old["lastTransitionTime"] if old and old.get("status") == value else now()
    condition: dict[str, Any] = {
        "type": kind,
        "status": value,
        "reason": str(reason),
        "message": message[:1000],
        "lastTransitionTime": transition,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    others = [c for c in conditions or [] if c.get("type") != kind]
    return [*others, condition]


def ready_condition(
    ready: bool,
    reason: Reason,
    message: str,
    generation: int | None,
    previous: list[dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """The conditions list with `Ready` set; lastTransitionTime only moves when status flips."""
    return set_condition(previous, "Ready", ready, reason, message, generation)


def is_ready(status: dict[str, Any] | None) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (status or {}).get("conditions") or []
    )
