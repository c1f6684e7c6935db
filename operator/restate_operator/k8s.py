"""The operator's Kubernetes calls: reads of Services and Deployments, the ReplicaSets,
Services and pods of RestateWorkload versions, and status patches of both custom resources.

The `kubernetes` client is synchronous: every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client import ApiException

from restate_operator.status import RegistrationStatus, WorkloadStatus, dump

GROUP, VERSION, PLURAL = "examples.restate.dev", "v1alpha1", "restateregistrations"
WORKLOADS = "restateworkloads"


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


def _ignore_missing(call: Callable[[], Any]) -> None:
    try:
        call()
    except ApiException as error:
        if error.status != 404:
            raise


def _core() -> client.CoreV1Api:
    return client.CoreV1Api(api_client())


def _apps() -> client.AppsV1Api:
    return client.AppsV1Api(api_client())


async def read_service(namespace: str, name: str) -> dict[str, Any] | None:
    return await asyncio.to_thread(_read_or_none, _core().read_namespaced_service, name, namespace)


async def read_deployment(namespace: str, name: str) -> dict[str, Any] | None:
    apps = _apps()
    return await asyncio.to_thread(_read_or_none, apps.read_namespaced_deployment, name, namespace)


async def patch_status(
    namespace: str, name: str, status: dict[str, Any], plural: str = PLURAL
) -> None:
    """Merge-patches `.status` (keys set to None are removed); a vanished object is ignored.
    The patch is checked against the kind's status model first (status.py)."""
    dump(WorkloadStatus if plural == WORKLOADS else RegistrationStatus, status)
    custom = client.CustomObjectsApi(api_client())
    await asyncio.to_thread(
        _ignore_missing,
        lambda: custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, {"status": status}
        ),
    )


# ----------------------------------------------------------------- RestateWorkload versions


def _items(listed: Any) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], _plain(listed)["items"])


async def list_replicasets(namespace: str, selector: str) -> list[dict[str, Any]]:
    apps = _apps()
    listed = await asyncio.to_thread(
        apps.list_namespaced_replica_set, namespace, label_selector=selector
    )
    return _items(listed)


async def create_replicaset(namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    apps = _apps()
    created = await asyncio.to_thread(
        lambda: apps.create_namespaced_replica_set(namespace, body)  # type: ignore[arg-type]
    )
    return _plain(created)


async def patch_replicaset(namespace: str, name: str, patch: dict[str, Any]) -> None:
    apps = _apps()
    await asyncio.to_thread(
        _ignore_missing, lambda: apps.patch_namespaced_replica_set(name, namespace, patch)
    )


async def delete_replicaset(namespace: str, name: str) -> None:
    apps = _apps()
    options = client.V1DeleteOptions(propagation_policy="Background")
    await asyncio.to_thread(
        _ignore_missing,
        lambda: apps.delete_namespaced_replica_set(name, namespace, body=options),
    )


async def list_services(namespace: str, selector: str) -> list[dict[str, Any]]:
    core = _core()
    listed = await asyncio.to_thread(
        core.list_namespaced_service, namespace, label_selector=selector
    )
    return _items(listed)


async def create_service(namespace: str, body: dict[str, Any]) -> None:
    core = _core()
    await asyncio.to_thread(
        lambda: core.create_namespaced_service(namespace, body)  # type: ignore[arg-type]
    )


async def delete_service(namespace: str, name: str) -> None:
    core = _core()
    await asyncio.to_thread(
        _ignore_missing, lambda: core.delete_namespaced_service(name, namespace)
    )


async def list_pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    core = _core()
    listed = await asyncio.to_thread(core.list_namespaced_pod, namespace, label_selector=selector)
    return _items(listed)


async def delete_pod(namespace: str, name: str) -> None:
    core = _core()
    await asyncio.to_thread(_ignore_missing, lambda: core.delete_namespaced_pod(name, namespace))
