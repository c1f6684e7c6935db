"""pytest fixtures for the end-to-end tests on real pods.

``real_cluster`` is, in this order:
1. ``RESTATE_EXAMPLES_KUBECONFIG``: any cluster; the images must already be where its nodes
   pull them from (``RESTATE_EXAMPLES_IMAGE_PREFIX`` is put before every image repository);
2. kind, where a Docker engine and kind exist: the images are built with ``docker build`` and
   loaded with ``kind load`` (cluster ``RESTATE_EXAMPLES_KIND_CLUSTER``, made if missing);
3. else the local real node (``localcluster.local``, root): the images are built with
   ``localcluster/images/images.sh`` and imported into its containerd. A node already started by
   ``make cluster`` is reused and left running; one started here is stopped at the end.
The same tests run on all three.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from catalog import IMAGE_VALUES

from localcluster import local
from localcluster.controlplane import (
    REPO_ROOT,
    KubeStartupError,
    find_tool,
    helm_env,
    resolve_bin_dir,
)
from testkit.ports import free_port
from testkit.processes import eventually

ENV_KUBECONFIG = "RESTATE_EXAMPLES_KUBECONFIG"
ENV_IMAGE_PREFIX = "RESTATE_EXAMPLES_IMAGE_PREFIX"
ENV_KIND_CLUSTER = "RESTATE_EXAMPLES_KIND_CLUSTER"


class CommandError(AssertionError):
    pass


def run(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(args),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and proc.returncode != 0:
        raise CommandError(
            f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
        )
    return proc


@dataclass
class RealCluster:
    """A cluster with real pods, and the tools to drive it as a user would."""

    provider: str
    """"kubeconfig", "kind" or "local-node"."""
    kubeconfig: Path
    bin_dir: Path | None
    workdir: Path
    image_values: list[str] = field(default_factory=list)
    """``--set`` arguments pointing the chart at this cluster's images (none on the local
    node: it has them under the chart's default references)."""

    def _tool(self, name: str) -> str:
        return find_tool(self.bin_dir, name)

    def kubectl(
        self, *args: str, timeout: float = 300, check: bool = True, input: str | None = None
    ) -> str:
        cmd = [self._tool("kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        return run(cmd, timeout=timeout, check=check, input=input).stdout

    def helm(self, *args: str, timeout: float = 900, check: bool = True) -> str:
        env = helm_env(self.workdir)
        cmd = [self._tool("helm"), "--kubeconfig", str(self.kubeconfig), *args]
        return run(cmd, env=env, timeout=timeout, check=check).stdout

    @contextlib.contextmanager
    def port_forward(self, namespace: str, target: str, remote: int) -> Iterator[str]:
        """``kubectl port-forward`` as a user runs it; yields the local URL."""
        local = free_port()
        cmd = [self._tool("kubectl"), "--kubeconfig", str(self.kubeconfig), "-n", namespace,
               "port-forward", target, f"{local}:{remote}", "--address", "127.0.0.1"]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            eventually(lambda: _connectable(local), 30, f"port-forward to {target}")
            yield f"http://127.0.0.1:{local}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _connectable(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _bin_dir() -> Path | None:
    try:
        return resolve_bin_dir()
    except KubeStartupError:
        return None


def _kind_usable() -> bool:
    if shutil.which("docker") is None or shutil.which("kind") is None:
        return False
    return run(["docker", "info"], check=False, timeout=60).returncode == 0


def _kind(workdir: Path, bin_dir: Path | None) -> Iterator[RealCluster]:
    name = os.environ.get(ENV_KIND_CLUSTER, "restate-examples")
    existing = run(["kind", "get", "clusters"]).stdout.split()
    if name not in existing:
        run(["kind", "create", "cluster", "--name", name, "--wait", "180s"])
    kubeconfig = workdir / "kind.kubeconfig"
    kubeconfig.write_text(run(["kind", "get", "kubeconfig", "--name", name]).stdout)
    sets = []
    for target, key in IMAGE_VALUES.items():
        image = f"restate-examples-{target}:e2e"
        run(
            ["docker", "build", "--target", target, "--tag", image, str(REPO_ROOT)],
            timeout=1800,
        )
        run(["kind", "load", "docker-image", image, "--name", name])
        sets += ["--set", f"{key}.image.repository=restate-examples-{target}"]
        sets += ["--set", f"{key}.image.tag=e2e"]
    try:
        yield RealCluster("kind", kubeconfig, bin_dir, workdir, sets)
    finally:
        if name not in existing:
            run(["kind", "delete", "cluster", "--name", name], check=False)


def _local_node(workdir: Path, bin_dir: Path | None) -> Iterator[RealCluster]:
    if os.geteuid() != 0:
        pytest.fail("the local real node needs root (or set RESTATE_EXAMPLES_KUBECONFIG)")
    started_here = local.running() is None
    archive = local.build_images()
    info = local.up(workdir / "local.kubeconfig", images=archive)
    print(f"\nlocal node: {info.server}, timings {info.timings}")
    try:
        yield RealCluster("local-node", workdir / "local.kubeconfig", bin_dir, workdir)
    finally:
        if started_here:  # fails the run, naming it, if anything stays on the host
            print(f"local node: stopped; {local.down()}")


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    workdir = tmp_path_factory.mktemp("real-cluster")
    bin_dir = _bin_dir()
    external = os.environ.get(ENV_KUBECONFIG)
    if external:
        prefix = os.environ.get(ENV_IMAGE_PREFIX, "")
        sets = []
        if prefix:
            for target, key in IMAGE_VALUES.items():
                sets += ["--set", f"{key}.image.repository={prefix}restate-examples-{target}"]
        yield RealCluster("kubeconfig", Path(external), bin_dir, workdir, sets)
    elif _kind_usable():
        yield from _kind(workdir, bin_dir)
    else:
        yield from _local_node(workdir, bin_dir)
