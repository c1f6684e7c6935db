"""Reads of Services and Deployments and writes of RestateRegistration status.

The `kubernetes` client is synchronous: every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from kubernetes import client, config
from kubernetes.client import ApiException

GROUP, VERSION, PLURAL = "examples.restate.dev", "v1alpha1", "restateregistrations"


@functools.cache
def api_client() -> client.ApiClient:
    """From the pod's ServiceAccount in a cluster, else from $KUBECONFIG / ~/.kube/config."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def _plain(obj: Any) -> dict[str, Any]:
    """The object as the API server's JSON (camelCase keys)."""
    result: dict[str, Any] = api_client().sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    return result


def _read_or_none(read: Any, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return _plain(read(name, namespace))
    except ApiException as error:
        if error.status == 404:
            return None
        raise


async def read_service(namespace: str, name: str) -> dict[str, Any] | None:
    core = client.CoreV1Api(api_client())
    return await asyncio.to_thread(_read_or_none, core.read_namespaced_service, name, namespace)


async def read_deployment(namespace: str, name: str) -> dict[str, Any] | None:
    apps = client.AppsV1Api(api_client())
    return await asyncio.to_thread(_read_or_none, apps.read_namespaced_deployment, name, namespace)


async def patch_status(namespace: str, name: str, status: dict[str, Any]) -> None:
    """Merge-patches `.status` (keys set to None are removed); a vanished object is ignored."""
    custom = client.CustomObjectsApi(api_client())

    def patch() -> None:
        try:
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status}
            )
        except ApiException as error:
            if error.status != 404:
                raise

    await asyncio.to_thread(patch)
