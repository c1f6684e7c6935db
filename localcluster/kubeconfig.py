"""Kubeconfig files (as JSON, which is valid YAML) and API clients made from them."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _config(
    server: str, ca_pem: bytes | None, user: str, credentials: dict[str, str], namespace: str
) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = _b64(ca_pem)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "restate-examples", "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {
                "name": user,
                "context": {"cluster": "restate-examples", "user": user, "namespace": namespace},
            }
        ],
        "current-context": user,
    }


def token_kubeconfig(
    server: str, ca_pem: bytes | None, token: str, *, user: str, namespace: str = "default"
) -> dict[str, Any]:
    """A kubeconfig authenticating with a bearer token."""
    return _config(server, ca_pem, user, {"token": token}, namespace)


def cert_kubeconfig(
    server: str, ca_pem: bytes, cert: Path, key: Path, *, user: str
) -> dict[str, Any]:
    """A kubeconfig authenticating with a client certificate (kubelet, kube-proxy)."""
    credentials = {
        "client-certificate-data": _b64(cert.read_bytes()),
        "client-key-data": _b64(key.read_bytes()),
    }
    return _config(server, ca_pem, user, credentials, "default")


def write(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.chmod(0o600)
    return path


def api_client(path: Path) -> k8s.ApiClient:
    """A new ``kubernetes.client.ApiClient`` for a kubeconfig file."""
    api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(path), persist_config=False
    )
    return api
