"""The status of both custom resources, typed (pydantic), beside the typed specs (spec.py).

Every status the operator writes passes through these models (`dump`): a field missing here is
an error in the operator, not a field the API server silently prunes; tests check that each
model field is in the CRD's status schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

VersionState = Literal["Pending", "Current", "Draining", "Removing", "Retired"]


class _Status(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class Condition(_Status):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = Field(None, alias="lastTransitionTime")
    observed_generation: int | None = Field(None, alias="observedGeneration")


class WaitingOn(_Status):
    deployment_id: str = Field(alias="deploymentId")
    version: str | None = None
    pinned_invocations: int = Field(alias="pinnedInvocations")


class Deletion(_Status):
    policy: str
    message: str | None = None
    pinned_invocations: int | None = Field(None, alias="pinnedInvocations")
    force_at: str | None = Field(None, alias="forceAt")
    waiting_on: list[WaitingOn] | None = Field(None, alias="waitingOn")


class VersionStatus(_Status):
    hash: str
    state: VersionState
    deployment_id: str | None = Field(None, alias="deploymentId")
    endpoint: str | None = None
    services: list[str] | None = None
    replicas: int | None = None
    ready_replicas: int | None = Field(None, alias="readyReplicas")
    pinned_invocations: int | None = Field(None, alias="pinnedInvocations")
    registered_at: str | None = Field(None, alias="registeredAt")
    draining_since: str | None = Field(None, alias="drainingSince")
    drained_at: str | None = Field(None, alias="drainedAt")
    retired_at: str | None = Field(None, alias="retiredAt")
    message: str | None = None


class WorkloadStatus(_Status):
    observed_generation: int | None = Field(None, alias="observedGeneration")
    current_version: str | None = Field(None, alias="currentVersion")
    desired_version: str | None = Field(None, alias="desiredVersion")
    versions: list[VersionStatus] | None = None
    draining_versions: int | None = Field(None, alias="drainingVersions")
    history_versions: int | None = Field(None, alias="historyVersions")
    history: list[str] | None = None
    replicas: int | None = None
    ready_replicas: int | None = Field(None, alias="readyReplicas")
    selector: str | None = None
    deployment_id: str | None = Field(None, alias="deploymentId")
    endpoint: str | None = None
    paused: bool | None = None
    deletion: Deletion | None = None
    conditions: list[Condition] | None = None


class ServiceStatus(_Status):
    name: str
    type: str
    handlers: list[str]


class Superseded(_Status):
    deployment_id: str = Field(alias="deploymentId")
    superseded_at: str | None = Field(None, alias="supersededAt")
    drained_at: str | None = Field(None, alias="drainedAt")
    pinned_invocations: int | None = Field(None, alias="pinnedInvocations")
    message: str | None = None


class RegistrationStatus(_Status):
    observed_generation: int | None = Field(None, alias="observedGeneration")
    deployment_id: str | None = Field(None, alias="deploymentId")
    endpoint: str | None = None
    pod_template_hash: str | None = Field(None, alias="podTemplateHash")
    registered_at: str | None = Field(None, alias="registeredAt")
    service_names: str | None = Field(None, alias="serviceNames")
    services: list[ServiceStatus] | None = None
    superseded_deployment_ids: list[str] | None = Field(None, alias="supersededDeploymentIds")
    superseded: list[Superseded] | None = None
    deletion: Deletion | None = None
    conditions: list[Condition] | None = None


def versions_of(status: Mapping[str, Any], invalid: list[str] | None = None) -> list[VersionStatus]:
    """A RestateWorkload status's `versions`, typed. An entry the model refuses (status is a
    cache: edited by hand, say) is left out and described in `invalid`; the version's
    ReplicaSet is then adopted and judged from Restate like any version the status lost."""
    versions: list[VersionStatus] = []
    for raw in status.get("versions") or []:
        try:
            versions.append(VersionStatus.model_validate(raw))
        except ValidationError as error:
            if invalid is not None:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                invalid.append(f"{str(raw)[:120]}: {where}: {first['msg']}")
    return versions


def dump(model: type[_Status], patch: dict[str, Any]) -> dict[str, Any]:
    """A status merge patch checked against its model: unknown fields and wrong types raise.
    Keys set to None stay None (a merge patch removes them)."""
    model.model_validate({k: v for k, v in patch.items() if v is not None})
    return patch
