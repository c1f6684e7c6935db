"""A kind cluster for the end-to-end tests, on Docker or on podman (``KIND_EXPERIMENTAL_PROVIDER
=podman``, rootful): one code path for both, only the provider's command and environment
differ. On podman, kind runs with images.sh's own storage and configuration (the node image of
``localcluster/kind/build.sh`` and the suite's images are there; nothing global changes).

What a kind cluster leaves on the host is removed by ``clean``, before a create (leftovers of a
killed run) and after a delete: the node containers and their volumes, kind's network, the
``/lib/modules`` directory made for kind's bind mount where the host has none, and the host
sysctls the kubelet in the node changes (they are not namespaced).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from localcluster import hoststate, local
from localcluster.controlplane import REPO_ROOT

CLUSTER_CONFIG = REPO_ROOT / "localcluster" / "kind" / "cluster.yaml"
BUILD_SH = REPO_ROOT / "localcluster" / "kind" / "build.sh"
ENV_PROVIDER = "KIND_EXPERIMENTAL_PROVIDER"
LABEL = "io.x-k8s.kind.cluster"
NETWORK = "kind"
LIB_MODULES = Path("/lib/modules")
CNI_NETWORKS = Path("/var/lib/cni/networks")  # podman's CNI backend: address leases per network
CNI_CHAINS = ("CNI-",)  # the chains of podman's CNI plugins (portmap, firewall)
STATE = local.CACHE / "kind-host"
"""What this module made on the host (to undo it): the marker of /lib/modules, the sysctls."""
CREATE_TIMEOUT = 600.0


def _run(
    args: list[str], env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@dataclass
class Kind:
    name: str
    provider: str = field(default_factory=lambda: os.environ.get(ENV_PROVIDER) or "docker")
    """"docker" or "podman": kind's provider and the engine of its nodes."""

    @property
    def env(self) -> dict[str, str]:
        if self.provider == "podman":
            return {**local.podman_env(), ENV_PROVIDER: "podman"}
        return dict(os.environ)

    @property
    def node(self) -> str:
        return f"{self.name}-control-plane"

    def kind(self, *args: str, timeout: float = 900, check: bool = True) -> str:
        proc = _run(["kind", *args], self.env, timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kind {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc.stdout

    def engine(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run([self.provider, *args], self.env, timeout)

    def clusters(self) -> list[str]:
        return self.kind("get", "clusters").split()

    def create(self, image: str | None) -> None:
        """Creates the cluster (cleaning first what an earlier run left)."""
        self.clean()
        if self.provider == "podman" and not LIB_MODULES.exists():
            # kind bind-mounts /lib/modules into its nodes; podman refuses a missing source.
            STATE.mkdir(parents=True, exist_ok=True)
            LIB_MODULES.mkdir()
            (STATE / "lib-modules-made").touch()
        hoststate.record_sysctls(STATE / "sysctls.json")
        if self.provider == "podman":  # its CNI plugins' chains (portmap, firewall) stay
            hoststate.record_chains(STATE / "cni-chains.json", CNI_CHAINS)
        args = ["create", "cluster", "--name", self.name, "--config", str(CLUSTER_CONFIG)]
        args += ["--image", image] if image else []
        self.kind(*args, "--wait", "180s", timeout=CREATE_TIMEOUT)

    def load(self, archive: Path) -> None:
        self.kind("load", "image-archive", str(archive), "--name", self.name)

    def kill_container(self, container_id: str, signal: str = "SIGKILL") -> None:
        proc = self.engine("exec", self.node, "ctr", "-n", "k8s.io", "task", "kill", "--all",
                           "--signal", signal, container_id)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"killing {container_id} in {self.node}: {proc.stderr}")

    def delete(self) -> list[str]:
        """Deletes the cluster and cleans the host; returns what ``clean`` had to remove."""
        self.kind("delete", "cluster", "--name", self.name, check=False)
        return self.clean()

    def clean(self) -> list[str]:
        """Removes what a cluster of this name left (a killed run's too); idempotent. Returns
        what it found still there after ``kind delete`` that kind should have removed: its
        network, which kind keeps by design (with Docker too), is removed here once no
        container is on it (podman), but is not reported."""
        found: list[str] = []
        self.kind("delete", "cluster", "--name", self.name, check=False)
        for kind in ("container", "volume"):
            ls = self.engine(kind, "ls", "-a" if kind == "container" else "--quiet",
                             "--filter", f"label={LABEL}={self.name}", "--format",
                             "{{.ID}}" if kind == "container" else "{{.Name}}")  # fmt: skip
            for item in ls.stdout.split():
                found.append(f"{kind} {item}")
                self.engine(kind, "rm", "--force", item)
        if self.provider == "podman" and self._network_unused():
            self.engine("network", "rm", NETWORK)
        if self.provider == "podman" and self.engine("network", "exists", NETWORK).returncode:
            # podman's CNI backend keeps the network's address leases after `network rm`.
            shutil.rmtree(CNI_NETWORKS / NETWORK, ignore_errors=True)
            # (and the results directory it leaves empty when the node's container goes)
            for empty in (CNI_NETWORKS, CNI_NETWORKS.parent / "results", CNI_NETWORKS.parent):
                with contextlib.suppress(OSError):
                    empty.rmdir()
        marker = STATE / "lib-modules-made"
        if marker.exists():
            if LIB_MODULES.is_dir() and not any(LIB_MODULES.iterdir()):
                LIB_MODULES.rmdir()
            marker.unlink()
        hoststate.restore_sysctls(STATE / "sysctls.json")
        # podman's CNI plugins leave their chains (CNI-HOSTPORT-*, CNI-FORWARD...) after the
        # last container: the ones the cluster made go once no podman container runs, in the
        # project's podman store or the machine's own.
        if self.provider == "podman" and not any(
            _run(["podman", "ps", "-q"], env).stdout.split() for env in (self.env, dict(os.environ))
        ):
            hoststate.delete_recorded_chains(STATE / "cni-chains.json", CNI_CHAINS)
        return found

    def _network_unused(self) -> bool:
        """kind's network exists and no container (of any cluster) is on it."""
        inspect = self.engine("network", "inspect", NETWORK)
        if inspect.returncode != 0:
            return False
        users = self.engine("ps", "-a", "--filter", f"network={NETWORK}", "--format", "{{.ID}}")
        return not users.stdout.split()
