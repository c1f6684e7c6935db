"""The `Ready` condition of a RestateRegistration and its reasons."""

from __future__ import annotations

import datetime
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    REGISTERED = "Registered"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"  # the previous revision stays registered
    DEPLOYMENT_NOT_FOUND = "DeploymentNotFound"
    DEPLOYMENT_NOT_AVAILABLE = "DeploymentNotAvailable"
    SERVICE_NOT_FOUND = "ServiceNotFound"
    ADMIN_API_UNREACHABLE = "AdminApiUnreachable"
    ADMIN_API_REJECTED = "AdminApiRejected"
    CONFLICTING_REGISTRATION = "ConflictingRegistration"
    DRAINING = "Draining"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_condition(
    ready: bool,
    reason: Reason,
    message: str,
    generation: int | None,
    previous: list[dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """The conditions list with `Ready` set; lastTransitionTime only moves when status flips."""
    status = "True" if ready else "False"
    old = next((c for c in previous or [] if c.get("type") == "Ready"), None)
    transition = old["lastTransitionTime"] if old and old.get("status") == status else now()
    condition: dict[str, Any] = {
        "type": "Ready",
        "status": status,
        "reason": str(reason),
        "message": message[:1000],
        "lastTransitionTime": transition,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    others = [c for c in previous or [] if c.get("type") != "Ready"]
    return [*others, condition]


def is_ready(status: dict[str, Any] | None) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (status or {}).get("conditions") or []
    )
