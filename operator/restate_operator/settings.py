"""The operator's settings, read from environment variables and validated at start."""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# {cluster_domain} is CLUSTER_DOMAIN: the DNS suffix of the cluster's Services (the kubelet's
# --cluster-domain), "cluster.local" unless the cluster was set up otherwise.
DEFAULT_ENDPOINT_TEMPLATE = "http://{service}.{namespace}.svc.{cluster_domain}:{port}{path}"
TEMPLATE_FIELDS = "{service}, {namespace}, {port}, {path}, {cluster_domain}"


class Settings(BaseSettings):
    """Each setting maps to the environment variable of the same name in upper case."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Namespace the operator watches (namespaced operation); empty: all namespaces.
    watch_namespace: str = ""
    # Default Restate admin API for registrations without `spec.adminUrl`.
    restate_admin_url: str = "http://restate.restate.svc.cluster.local:9070"
    # How a Service's in-cluster address is formed (TEMPLATE_FIELDS).
    endpoint_template: str = DEFAULT_ENDPOINT_TEMPLATE
    # DNS suffix of Service names in this cluster (the chart passes its `clusterDomain`).
    cluster_domain: str = Field("cluster.local", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    # Address of the metrics and liveness listeners (127.0.0.1 outside a pod).
    bind_host: str = "0.0.0.0"
    metrics_port: int = Field(9090, ge=0, le=65535, description="0 disables metrics.")
    liveness_port: int = Field(8080, ge=0, le=65535, description="0 disables /healthz.")
    # Interval of the drift check of both kinds (a RestateRegistration's superseded deployments
    # are judged then too, sooner when a drain delay ends; a paused RestateWorkload re-reads
    # its annotation then).
    drift_check_seconds: float = Field(30.0, gt=0)
    # Capped exponential backoff after a failure: min(initial * 2**n, max).
    backoff_initial_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(60.0, gt=0)
    # While the admin API does not answer at all (Restate starting, restarting, not scheduled
    # yet) retries stay this short: Restate comes up without telling us, and a registration
    # should follow its readiness within seconds, not after a backoff grown toward a minute.
    # An answer that refuses (AdminApiRejected) still backs off exponentially.
    unreachable_retry_seconds: float = Field(2.0, gt=0)
    # Timeout of one admin API request.
    admin_timeout_seconds: float = Field(10.0, gt=0)
    # A Force deletion that cannot reach the admin API gives up after this long (the Restate
    # deployment is then left behind, with a Warning event): deletion never hangs forever.
    force_deletion_timeout_seconds: float = Field(300.0, ge=0)
    # While a RestateWorkload has versions draining or a rollout pending: how often the
    # invocations pinned to old versions are counted (SQL over sys_invocation_status).
    drain_poll_seconds: float = Field(5.0, gt=0)
    log_format: Literal["json", "plain", "full"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def endpoint(self, service: str, namespace: str, port: int, path: str) -> str:
        """The address Restate is given for a Service (ENDPOINT_TEMPLATE)."""
        return self.endpoint_template.format(
            service=service,
            namespace=namespace,
            port=port,
            path=path,
            cluster_domain=self.cluster_domain,
        )

    @field_validator("restate_admin_url")
    @classmethod
    def _strip_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @field_validator("endpoint_template")
    @classmethod
    def _check_template(cls, template: str) -> str:
        try:
            template.format(service="s", namespace="n", port=1, path="/p", cluster_domain="d")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"{template!r}: use only {TEMPLATE_FIELDS} ({error})") from None
        return template


@functools.cache
def get_settings() -> Settings:
    return Settings()
