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


class AdminApiInvalidAnswer(AdminApiError):
    """The server answered 2xx without what was asked (no count row, an unexpected shape).
    Never read as "nothing there": nothing is removed on such an answer."""

    reason = "AdminApiInvalidAnswer"


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


def _deployment(raw: Any, what: str) -> RestateDeployment:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise AdminApiInvalidAnswer(f"{what}: a deployment without an id: {str(raw)[:200]}")
    services = raw.get("services", [])
    if not isinstance(services, list):
        raise AdminApiInvalidAnswer(f"{what}: deployment {raw['id']}: services is no list")
    try:
        return RestateDeployment(id=raw["id"], uri=str(raw.get("uri", "")),
                                 services=_services(services))  # fmt: skip
    except (KeyError, TypeError, AttributeError) as error:
        raise AdminApiInvalidAnswer(f"{what}: deployment {raw['id']}: {error!r}") from None


def _listed(body: Any, key: str, what: str) -> list[Any]:
    """body[key] as a list; anything else is an answer without what was asked."""
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise AdminApiInvalidAnswer(f"{what}: the answer has no list {key!r}: {str(body)[:200]}")
    return items


def count_of(body: Any, what: str) -> int:
    """The one count row of a `SELECT count(*) AS n` answer. No row, no `n`, a value that is
    not a whole number: an error (it is never read as 0, which would let a version go)."""
    rows = _listed(body, "rows", f"count {what}")
    if len(rows) != 1 or not isinstance(rows[0], dict) or "n" not in rows[0]:
        raise AdminApiInvalidAnswer(f"count {what}: expected one row with n, got {str(rows)[:200]}")
    value = rows[0]["n"]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise AdminApiInvalidAnswer(f"count {what}: n is not a count: {value!r}")
    try:
        count = int(value)
    except ValueError:
        raise AdminApiInvalidAnswer(f"count {what}: n is not a count: {value!r}") from None
    if count < 0:
        raise AdminApiInvalidAnswer(f"count {what}: n is negative: {count}")
    return count


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
        try:
            return response.json()
        except ValueError:
            raise AdminApiInvalidAnswer(
                f"{method} {path}: {response.status_code} not JSON: {response.text[:200]}"
            ) from None

    async def deployments(self) -> list[RestateDeployment]:
        body = await self._json("GET", "/deployments")
        what = "GET /deployments"
        return [_deployment(d, what) for d in _listed(body, "deployments", what)]

    async def deployment(self, deployment_id: str) -> RestateDeployment | None:
        response = await self._call("GET", f"/deployments/{deployment_id}")
        if response.status_code == 404:
            return None
        if response.is_error:
            raise AdminApiRejected(f"GET deployment: {response.status_code} {_message(response)}")
        try:
            raw = response.json()
        except ValueError:
            text = response.text[:200]
            raise AdminApiInvalidAnswer(f"GET deployment: not JSON: {text}") from None
        return _deployment(raw, f"GET /deployments/{deployment_id}")

    async def latest_deployments(self) -> dict[str, str]:
        """Service name -> id of the deployment that serves its latest revision."""
        body = await self._json("GET", "/services")
        latest: dict[str, str] = {}
        for service in _listed(body, "services", "GET /services"):
            name = service.get("name") if isinstance(service, dict) else None
            deployment_id = service.get("deployment_id") if isinstance(service, dict) else None
            if not isinstance(name, str) or not isinstance(deployment_id, str):
                raise AdminApiInvalidAnswer(f"GET /services: a service without name or "
                                            f"deployment_id: {str(service)[:200]}")  # fmt: skip
            latest[name] = deployment_id
        return latest

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
        answer = await self._json("POST", "/deployments", json=request)
        return _deployment(answer, "POST /deployments")

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
        return count_of(body, f"pinned to {deployment_id}")

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
