"""A small async client for the parts of Restate's admin API the operator uses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from restate_operator import metrics

_DEPLOYMENT_ID = re.compile(r"^dp_[A-Za-z0-9]+$")
_DEPLOYMENT_PATH = re.compile(r"/deployments/[^/]+")


class AdminApiError(Exception):
    """A failed admin API call; `reason` is the condition reason it maps to."""

    reason = "AdminApiUnreachable"


class AdminApiUnreachable(AdminApiError):
    """No answer: connection refused, timeout, 5xx (the server is not serving)."""


class AdminApiRejected(AdminApiError):
    """The server answered and refused (4xx, or a discovery error it reports)."""

    reason = "AdminApiRejected"


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    type: str
    handlers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RestateDeployment:
    id: str
    uri: str
    services: tuple[ServiceInfo, ...] = field(default=())


def _services(raw: list[dict[str, Any]]) -> tuple[ServiceInfo, ...]:
    return tuple(
        ServiceInfo(
            name=s["name"],
            type=s.get("ty", ""),
            handlers=tuple(sorted(h["name"] for h in s.get("handlers", []))),
        )
        for s in raw
    )


def _deployment(raw: dict[str, Any]) -> RestateDeployment:
    return RestateDeployment(
        id=raw["id"], uri=raw.get("uri", ""), services=_services(raw.get("services", []))
    )


def same_endpoint(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text


class AdminApi:
    """`async with AdminApi(url) as admin: ...`; every error is an `AdminApiError`."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def __aenter__(self) -> AdminApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        operation = f"{method} {_DEPLOYMENT_PATH.sub('/deployments/{id}', path.split('?')[0])}"
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            metrics.ADMIN_API_CALLS.labels(operation, "unreachable").inc()
            raise AdminApiUnreachable(f"{self.base_url}: {type(error).__name__}: {error}") from None
        if response.status_code >= 500 and "META0003" not in response.text:
            metrics.ADMIN_API_CALLS.labels(operation, "unreachable").inc()
            raise AdminApiUnreachable(
                f"{method} {path}: {response.status_code} {_message(response)}"
            )
        outcome = "rejected" if response.is_error and response.status_code != 404 else "ok"
        metrics.ADMIN_API_CALLS.labels(operation, outcome).inc()
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._call(method, path, **kwargs)
        if response.is_error:
            raise AdminApiRejected(f"{method} {path}: {response.status_code} {_message(response)}")
        return response.json()

    async def deployments(self) -> list[RestateDeployment]:
        body = await self._json("GET", "/deployments")
        return [_deployment(d) for d in body.get("deployments", [])]

    async def deployment(self, deployment_id: str) -> RestateDeployment | None:
        response = await self._call("GET", f"/deployments/{deployment_id}")
        if response.status_code == 404:
            return None
        if response.is_error:
            raise AdminApiRejected(f"GET deployment: {response.status_code} {_message(response)}")
        return _deployment(response.json())

    async def latest_deployments(self) -> dict[str, str]:
        """Service name -> id of the deployment that serves its latest revision."""
        body = await self._json("GET", "/services")
        return {s["name"]: s["deployment_id"] for s in body.get("services", [])}

    async def register(
        self,
        uri: str,
        *,
        force: bool = False,
        use_http_11: bool = False,
        additional_headers: dict[str, str] | None = None,
    ) -> RestateDeployment:
        """POST /deployments: Restate calls the endpoint's /discover and stores its services."""
        request: dict[str, Any] = {"uri": uri, "force": force, "use_http_11": use_http_11}
        if additional_headers:
            request["additional_headers"] = additional_headers
        return _deployment(await self._json("POST", "/deployments", json=request))

    async def unfinished_pinned_invocations(self, deployment_id: str) -> int:
        """Invocations pinned to the deployment that have not completed."""
        if not _DEPLOYMENT_ID.match(deployment_id):
            raise ValueError(f"not a deployment id: {deployment_id!r}")
        sql = (
            "SELECT count(*) AS n FROM sys_invocation_status "
            f"WHERE pinned_deployment_id = '{deployment_id}' AND status != 'completed'"
        )
        body = await self._json(
            "POST", "/query", json={"query": sql}, headers={"accept": "application/json"}
        )
        rows = body.get("rows") or [{"n": 0}]
        return int(rows[0]["n"])

    async def delete(self, deployment_id: str) -> bool:
        """DELETE with force (Restate only supports forced removal); False if already gone."""
        response = await self._call("DELETE", f"/deployments/{deployment_id}?force=true")
        if response.status_code in (400, 404) and "not found" in response.text:
            return False
        if response.is_error:
            raise AdminApiRejected(
                f"DELETE deployment: {response.status_code} {_message(response)}"
            )
        return True
