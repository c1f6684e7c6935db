"""Register an endpoint with Restate, or make its existing deployment the latest again: the one
function both kinds (RestateRegistration, RestateWorkload) register with.

- No deployment at the URI: a plain POST (no force): a new deployment, discovery runs, it is
  the latest of its services.
- A deployment at the URI that is the latest of all its services: nothing to do.
- A deployment at the URI that is behind for some service (a rollback to a version still
  there, or in the revision history): POST again with `force`, which rediscovers it and makes
  it the latest. Safe: the same URI is the same code (a version's URI is the hash of its code).
  Restate keeps the same deployment id.
- The services' latest is a deployment this resource did not register: a `Conflict` (it is not
  taken over silently).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from restate_operator.admin_api import AdminApi, RestateDeployment, same_endpoint


class Conflict(Exception):
    """The services are served by deployments another party registered."""


@dataclass(frozen=True)
class Promotion:
    deployment: RestateDeployment  # the endpoint's deployment, now the latest
    registered: RestateDeployment | None  # set when a POST /deployments happened
    promoted: bool  # an existing deployment made the latest again (force)


async def register_or_promote(
    admin: AdminApi,
    endpoint: str,
    existing: Iterable[RestateDeployment],
    latest: dict[str, str],
    ours: set[str],
    *,
    use_http_11: bool,
    additional_headers: dict[str, str],
) -> Promotion:
    found = next((d for d in existing if same_endpoint(d.uri, endpoint)), None)
    if found is None:  # a new version (or Restate lost it): a new Restate deployment
        registered = await admin.register(
            endpoint, use_http_11=use_http_11, additional_headers=additional_headers
        )
        return Promotion(registered, registered, promoted=False)
    deployment = await admin.deployment(found.id) or found
    behind = [s.name for s in deployment.services if latest.get(s.name) != deployment.id]
    strangers = {latest[s] for s in behind if s in latest} - ours - {deployment.id}
    if strangers:
        raise Conflict(
            f"Restate services {behind} are served by deployment(s) {sorted(strangers)}, "
            "not registered by this resource; remove them or this resource"
        )
    if not behind:
        return Promotion(deployment, None, promoted=False)
    registered = await admin.register(
        endpoint, force=True, use_http_11=use_http_11, additional_headers=additional_headers
    )
    return Promotion(registered, registered, promoted=True)
