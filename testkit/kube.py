"""A Kubernetes cluster for the test suite, without Docker: :class:`Kube`, the handle the
``kube`` fixture (``tests/plugins/kube.py``) yields.

That cluster is the test control plane (``localcluster.controlplane``: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok, whose fake node runs no container) on
127.0.0.1 with free ports, from the binaries of ``localcluster/tools/build.sh``
(``make controlplane``), or the existing cluster ``RESTATE_EXAMPLES_KUBECONFIG`` names (kind
or real). The end-to-end tests on real pods use ``plugins.real_cluster`` instead.

The API server runs with RBAC, service-account token signing and a static admin token
(``system:masters``). A :class:`Kube` has an admin kubeconfig, ``api_client()``,
``as_service_account()``, ``kubectl()``/``helm()`` helpers and namespace helpers.

Environment:
  RESTATE_EXAMPLES_KUBECONFIG       use this cluster instead of starting one
  RESTATE_EXAMPLES_CACHE            cache root used by build.sh (binaries)
  RESTATE_EXAMPLES_CONTROLPLANE_BIN directory with the binaries (skips build.sh)
  RESTATE_EXAMPLES_KEEP_KUBE=1      keep the work dir (etcd data, logs) after the session
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client import ApiException

from localcluster import kubeconfig as kc
from localcluster.controlplane import (
    CONTROL_PLANE_STAGE,
    ControlPlane,
    KubeStartupError,
    find_tool,
    helm_env,
    resolve_bin_dir,
    sa_exists,
)

__all__ = [
    "CONTROL_PLANE_STAGE",
    "ControlPlane",
    "Kube",
    "KubeCommandError",
    "KubeStartupError",
    "resolve_bin_dir",
]

ENV_KUBECONFIG = "RESTATE_EXAMPLES_KUBECONFIG"
ENV_KEEP = "RESTATE_EXAMPLES_KEEP_KUBE"


class KubeCommandError(subprocess.CalledProcessError):
    """kubectl/helm exited non-zero; ``str()`` includes its stderr."""

    def __str__(self) -> str:
        cmd = " ".join(self.cmd) if isinstance(self.cmd, list) else str(self.cmd)
        return f"{cmd!r} exited {self.returncode}:\n{self.stderr or ''}{self.stdout or ''}"


@dataclass
class Kube:
    """Handle on the test cluster (yielded by the ``kube`` fixture)."""

    kubeconfig: Path
    """Admin kubeconfig (system:masters)."""
    bin_dir: Path | None
    """Directory with kubectl, helm, kube-apiserver, ... (None: use $PATH)."""
    workdir: Path
    """Scratch dir for generated kubeconfigs and helm state."""
    control_plane: ControlPlane | None = None
    """The local control plane, or None when using RESTATE_EXAMPLES_KUBECONFIG."""
    _sa_kubeconfigs: dict[tuple[str, str], Path] = field(default_factory=dict)

    # ----------------------------------------------------------------- clients

    def api_client(self) -> k8s.ApiClient:
        """A new ``kubernetes.client.ApiClient`` authenticated as admin."""
        return kc.api_client(self.kubeconfig)

    def service_account_token(
        self,
        namespace: str,
        name: str,
        *,
        expiration_seconds: int = 3600,
        audiences: Sequence[str] = (),
    ) -> str:
        """A token for the ServiceAccount, issued through the TokenRequest API."""
        body = k8s.AuthenticationV1TokenRequest(
            spec=k8s.V1TokenRequestSpec(
                audiences=list(audiences), expiration_seconds=expiration_seconds
            )
        )
        with self.api_client() as api:
            resp = k8s.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, body)
        if resp.status is None or not resp.status.token:
            raise RuntimeError(f"TokenRequest for {namespace}/{name} returned no token")
        return resp.status.token

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig authenticating as system:serviceaccount:<namespace>:<name> (for
        kubectl/helm/operators). The ServiceAccount must exist; its token lasts 1 hour."""
        key = (namespace, name)
        cached = self._sa_kubeconfigs.get(key)
        if cached is not None and cached.exists():
            return cached
        cluster = self._admin_cluster()
        token = self.service_account_token(namespace, name)
        kubeconfig = kc.token_kubeconfig(
            cluster["server"], None, token, user=f"{namespace}-{name}", namespace=namespace
        )
        kubeconfig["clusters"][0]["cluster"] = cluster
        path = kc.write(self.workdir / f"sa-{namespace}-{name}.kubeconfig", kubeconfig)
        self._sa_kubeconfigs[key] = path
        return path

    def as_service_account(self, namespace: str, name: str) -> k8s.ApiClient:
        """A new ``kubernetes.client.ApiClient`` authenticated as that ServiceAccount
        (see :meth:`service_account_kubeconfig` for the kubeconfig file)."""
        return kc.api_client(self.service_account_kubeconfig(namespace, name))

    def _admin_cluster(self) -> dict[str, Any]:
        view = json.loads(
            self.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
        )
        cluster: dict[str, Any] = view["clusters"][0]["cluster"]
        return cluster

    # ----------------------------------------------------------------- CLIs

    def _run(
        self,
        tool: str,
        args: Sequence[str],
        *,
        check: bool,
        input: str | None,
        kubeconfig: Path | None,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [find_tool(self.bin_dir, tool), *args]
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {}), "KUBECONFIG": str(kubeconfig or self.kubeconfig)},
            check=False,
        )
        if check and proc.returncode != 0:
            raise KubeCommandError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: Path | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl (admin unless ``kubeconfig`` is given); raises
        :class:`KubeCommandError` on failure unless ``check=False``."""
        return self._run(
            "kubectl", args, check=check, input=input, kubeconfig=kubeconfig, timeout=timeout
        )

    def helm(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: Path | None = None,
        timeout: float = 300.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run helm v4 with its cache/config/data dirs in the work dir (no $HOME state)."""
        env = helm_env(self.workdir)
        return self._run(
            "helm",
            args,
            check=check,
            input=input,
            kubeconfig=kubeconfig,
            timeout=timeout,
            env=env,
        )

    # ----------------------------------------------------------------- namespaces

    def create_namespace(self, prefix: str = "test", *, wait_for_sa: bool = True) -> str:
        """Create a namespace ``<prefix>-<random>`` and wait for its default ServiceAccount."""
        slug = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:50] or "test"
        name = f"{slug}-{uuid.uuid4().hex[:6]}"
        with self.api_client() as api:
            core = k8s.CoreV1Api(api)
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
            if wait_for_sa:
                deadline = time.monotonic() + 60
                while not sa_exists(core, name):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no default ServiceAccount in namespace {name}")
                    time.sleep(0.1)
        return name

    def delete_namespace(self, name: str) -> None:
        with self.api_client() as api, contextlib.suppress(ApiException):
            k8s.CoreV1Api(api).delete_namespace(name)

    @contextlib.contextmanager
    def temp_namespace(self, prefix: str = "test") -> Iterator[str]:
        name = self.create_namespace(prefix)
        try:
            yield name
        finally:
            self.delete_namespace(name)
