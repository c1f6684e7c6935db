"""The specs of the two custom resources, parsed once (pydantic) into typed, frozen objects.

The CRDs (deploy/helm/restate-examples/crds/) check the shape and fill the defaults on the
API server; the defaults here are the same, for objects written before a default existed and
for the unit tests. Nothing else in the operator reads a spec as a dict.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# `kubectl rollout restart` (and tools that imitate it) set this pod-template annotation. It
# restarts pods; it is not code, so it is left out of a version's hash (see version_hash).
RESTART_ANNOTATION = "kubectl.kubernetes.io/restartedAt"

DeletionPolicy = Literal["Drain", "Force", "Orphan"]


class _Spec(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class RegistrationOptions(_Spec):
    """How Restate calls the endpoint, and what happens to it on deletion (both kinds)."""

    path: str = ""
    use_http_11: bool = Field(False, alias="useHttp11")
    additional_headers: dict[str, str] = Field(default_factory=dict, alias="additionalHeaders")
    admin_url: str = Field("", alias="adminUrl")
    deletion_policy: DeletionPolicy = Field("Drain", alias="deletionPolicy")
    drain_timeout_seconds: int = Field(600, ge=0, alias="drainTimeoutSeconds")
    # An old version / superseded deployment stays this long after nothing is pinned to it.
    drain_delay_seconds: int = Field(300, ge=0, alias="drainDelaySeconds")

    @property
    def clean_path(self) -> str:
        return self.path.rstrip("/")

    def admin(self, default: str) -> str:
        return (self.admin_url or default).rstrip("/")


class ServiceRef(_Spec):
    name: str
    port: int = 9080


class DeploymentRef(_Spec):
    name: str


class RegistrationSpec(RegistrationOptions):
    """RestateRegistration: a Service in front of a Deployment the user manages."""

    service: ServiceRef
    deployment: DeploymentRef


class LabelSelector(_Spec):
    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[dict[str, Any]] = Field(default_factory=list, alias="matchExpressions")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [dict(e) for e in self.match_expressions]
        return out


class WorkloadSpec(RegistrationOptions):
    """RestateWorkload: the pods themselves, one ReplicaSet + Service per version."""

    replicas: int = Field(1, ge=0)
    selector: LabelSelector
    template: dict[str, Any]
    port: int = Field(9080, ge=1, le=65535)
    # Drained versions kept scaled to 0 with their Restate deployment (rollback: same one).
    revision_history_limit: int = Field(10, ge=0, alias="revisionHistoryLimit")


def parse_registration(spec: Mapping[str, Any]) -> RegistrationSpec:
    return RegistrationSpec.model_validate(dict(spec))


def parse_workload(spec: Mapping[str, Any]) -> WorkloadSpec:
    return WorkloadSpec.model_validate(dict(spec))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]


def code_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """The pod template without the restart annotation: what makes a version."""
    copy: dict[str, Any] = json.loads(json.dumps(template))
    annotations = (copy.get("metadata") or {}).get("annotations") or {}
    annotations.pop(RESTART_ANNOTATION, None)
    if "metadata" in copy and "annotations" in copy["metadata"] and not annotations:
        del copy["metadata"]["annotations"]
    return copy


def version_hash(spec: WorkloadSpec) -> str:
    """A version: the pod template (minus the restart annotation) and how Restate calls it
    (port, path, HTTP/1.1, headers). Restate deduplicates registrations by URI, so each of
    these needs a URI (a Service) of its own."""
    return _digest(
        [
            code_template(spec.template),
            spec.port,
            spec.clean_path,
            spec.use_http_11,
            spec.additional_headers,
        ]
    )


def revision_marker(pod_template_hash: str, spec: RegistrationOptions) -> str:
    """RestateRegistration: hash of the Deployment's pod template and the options."""
    return _digest([pod_template_hash, spec.use_http_11, spec.additional_headers])


def template_hash(deployment: Mapping[str, Any]) -> str:
    """Hash of a Deployment's pod template: changes with every rollout (and rollback)."""
    return _digest(deployment.get("spec", {}).get("template", {}))
