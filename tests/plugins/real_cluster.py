"""pytest fixtures for the end-to-end tests on real pods.

``real_cluster`` is, in this order:
1. ``RESTATE_EXAMPLES_KUBECONFIG``: any cluster; the images must already be where its nodes
   pull them from (``RESTATE_EXAMPLES_IMAGE_PREFIX`` is put before every image repository);
2. kind, where kind and a Docker engine exist, or podman with ``KIND_EXPERIMENTAL_PROVIDER=podman``
   (``make e2e-kind``): the images are built with ``docker build`` (podman: images.sh) and
   loaded with ``kind load`` (cluster ``RESTATE_EXAMPLES_KIND_CLUSTER``, made if missing from
   ``localcluster/kind/cluster.yaml`` and the node image ``RESTATE_EXAMPLES_KIND_IMAGE``,
   else kind's default; ``localcluster.kindnode``);
3. else the local real node (``localcluster.local``, root): the images are built with
   ``localcluster/images/images.sh`` and imported into its containerd. A node already started by
   ``make cluster`` is reused and left running; one started here is stopped at the end.
The same tests run on all three. A test that needs an image of its own (the rollout tests'
incompatible one) gets it through ``RealCluster.images``: built with the engine the cluster's
images come from and delivered the way they are (``kind load``, the node's containerd, a push
under the prefix): one code path, ``ClusterImages.add``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from catalog import IMAGE_VALUES

from localcluster import kindnode, local
from localcluster.controlplane import (
    REPO_ROOT,
    KubeStartupError,
    find_tool,
    helm_env,
    resolve_bin_dir,
)
from plugins.measured import record
from testkit import tiers
from testkit.ports import free_port
from testkit.processes import eventually

ENV_KUBECONFIG = "RESTATE_EXAMPLES_KUBECONFIG"
ENV_IMAGE_PREFIX = "RESTATE_EXAMPLES_IMAGE_PREFIX"
ENV_KIND_CLUSTER = "RESTATE_EXAMPLES_KIND_CLUSTER"
ENV_KIND_IMAGE = "RESTATE_EXAMPLES_KIND_IMAGE"


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
class ImageEngine:
    """The container engine that builds a cluster's images: docker (kind, a registry) or
    podman (the local node, with the project's own storage: ``local.podman_env``)."""

    command: str
    env: dict[str, str] = field(default_factory=dict)

    def build(
        self, context: Path, ref: str, *, file: Path | None = None, stage: str | None = None
    ) -> None:
        # podman: Docker's manifest format (containerd imports it), host network for pip.
        extra = ["--format", "docker", "--network", "host"] if self.command == "podman" else []
        args = [self.command, "build", "--quiet", *extra, "--tag", ref]
        args += ["--file", str(file)] if file else []
        args += ["--target", stage] if stage else []
        run([*args, str(context)], env=self.env, timeout=1800)

    def save(self, ref: str, archive: Path) -> Path:
        """A docker-archive of ``ref`` (what ``kind load image-archive`` and ``ctr images
        import`` read)."""
        archive.unlink(missing_ok=True)
        run([self.command, "save", "--output", str(archive), ref], env=self.env, timeout=600)
        return archive

    def push(self, ref: str) -> None:
        run([self.command, "push", ref], env=self.env, timeout=1800)


@dataclass
class ClusterImages:
    """The suite's images as this cluster's nodes see them, and how one more gets there."""

    engine: ImageEngine
    name_prefix: str
    """Before ``restate-examples-<target>`` in the engine's and the chart's references."""
    tag: str
    """The tag of the suite's images here (``e2e`` on kind, the chart's appVersion else)."""
    deliver: Callable[[str, Path], None]
    """(reference, a work directory): makes a built image pullable by the nodes."""

    def ref(self, target: str, tag: str | None = None) -> str:
        return f"{self.name_prefix}restate-examples-{target}:{tag or self.tag}"

    def add(
        self,
        context: Path,
        target: str,
        tag: str,
        workdir: Path,
        *,
        file: Path | None = None,
        stage: str | None = None,
    ) -> str:
        """Builds ``context`` as the image of ``target`` tagged ``tag`` with this cluster's
        engine and delivers it to the nodes; returns its reference."""
        ref = self.ref(target, tag)
        self.engine.build(context, ref, file=file, stage=stage)
        workdir.mkdir(parents=True, exist_ok=True)
        self.deliver(ref, workdir)
        return ref


def by_archive(engine: ImageEngine, load: Callable[[Path], object]) -> Callable[[str, Path], None]:
    """Delivery through a docker-archive: the engine saves the image, ``load`` imports it
    into the nodes' image store (kind's nodes, the local node's containerd)."""

    def deliver(ref: str, workdir: Path) -> None:
        archive = engine.save(ref, workdir / "image.tar")
        try:
            load(archive)
        finally:
            archive.unlink()

    return deliver


def kind_images(cluster: kindnode.Kind) -> ClusterImages:
    """kind: built with the provider's engine and loaded into the nodes with ``kind load
    image-archive``. Docker: each Dockerfile target with ``docker build`` (tag ``e2e``);
    podman: images.sh's images (its storage, the chart's default references), like the local
    node's."""
    if cluster.provider == "podman":
        engine = ImageEngine("podman", local.podman_env())
        return ClusterImages(
            engine,
            "docker.io/library/",
            local.chart_app_version(),
            by_archive(engine, cluster.load),
        )
    engine = ImageEngine("docker")
    return ClusterImages(engine, "", "e2e", by_archive(engine, cluster.load))


def local_node_images(tag: str) -> ClusterImages:
    """The local real node: podman (images.sh's storage), imported into containerd."""
    engine = ImageEngine("podman", local.podman_env())
    return ClusterImages(engine, "docker.io/library/", tag, by_archive(engine, local.load_images))


def registry_images(prefix: str, tag: str) -> ClusterImages:
    """A cluster given by kubeconfig: pushed under the prefix its nodes pull from."""
    engine = ImageEngine("docker") if _docker_usable() else ImageEngine("podman")
    return ClusterImages(engine, prefix, tag, lambda ref, _: engine.push(ref))


@dataclass
class RealCluster:
    """A cluster with real pods, and the tools to drive it as a user would."""

    provider: str
    """"kubeconfig", "kind" or "local-node"."""
    kubeconfig: Path
    bin_dir: Path | None
    workdir: Path
    cluster_values: list[str] = field(default_factory=list)
    """``--set`` arguments this cluster needs: the chart pointed at its images (none on the
    local node: it has them under the chart's default references); on kind, smaller CPU
    requests (see ``KIND_REQUESTS``)."""
    images: ClusterImages | None = None
    """How a test adds an image (None: a kubeconfig without an image prefix, nowhere to put
    one); ``images_missing`` says why."""
    images_missing: str = ""
    kind: kindnode.Kind | None = None
    """The kind cluster (kind only)."""

    def kill_container(self, namespace: str, pod: str) -> None:
        """SIGKILLs the pod's (first) container from the node's runtime: the process gets no
        chance to finish anything, and the kubelet restarts the container in the same pod."""
        status = json.loads(self.kubectl("-n", namespace, "get", "pod", pod, "-o", "json"))
        container_id = status["status"]["containerStatuses"][0]["containerID"]
        runtime, _, cid = container_id.partition("://")
        assert runtime == "containerd", container_id
        if self.provider == "local-node":
            local.kill_container(cid)
        elif self.kind is not None:
            self.kind.kill_container(cid)
        else:
            pytest.skip("killing a container needs the node's runtime; a kubeconfig alone "
                        "gives no access to it")  # fmt: skip

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
        """``kubectl port-forward`` as a user runs it; yields the local URL.

        kubectl's port-forward ends when its pod goes (a `helm upgrade` that changes Restate's
        settings restarts Restate's pod); a user runs it again, and so does this, on the same
        local port, until the block ends."""
        local = free_port()
        cmd = [self._tool("kubectl"), "--kubeconfig", str(self.kubeconfig), "-n", namespace,
               "port-forward", target, f"{local}:{remote}", "--address", "127.0.0.1"]  # fmt: skip
        done = threading.Event()
        current: list[subprocess.Popen[bytes]] = []

        def keep_forwarding() -> None:
            while not done.is_set():
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                current[:] = [proc]
                proc.wait()
                done.wait(1)  # before running it again, as a user would

        supervisor = threading.Thread(target=keep_forwarding, daemon=True)
        supervisor.start()
        try:
            eventually(lambda: _connectable(local), 30, f"port-forward to {target}")
            yield f"http://127.0.0.1:{local}"
        finally:
            done.set()
            while supervisor.is_alive():  # (it may have started one more as done was set)
                for proc in current:
                    proc.terminate()
                supervisor.join(timeout=1)


def _connectable(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _bin_dir() -> Path | None:
    try:
        return resolve_bin_dir()
    except KubeStartupError:
        return None


def _docker_usable() -> bool:
    if shutil.which("docker") is None:
        return False
    return run(["docker", "info"], check=False, timeout=60).returncode == 0


# kind runs the control plane as pods on its one node, and their CPU requests (about 850m)
# count against the host's cores: with the chart's (Restate 500m, 100m per example version) a
# 2-core machine leaves a rollout's new pods and the helm test pod Pending (Insufficient cpu)
# until the drained versions scale to 0. Requests only: no limit changes.
KIND_REQUESTS = (
    "--set", "restate.resources.requests.cpu=100m",
    "--set", "examples.defaults.resources.requests.cpu=20m",
)  # fmt: skip


def _kind(workdir: Path, bin_dir: Path | None) -> Iterator[RealCluster]:
    cluster = kindnode.Kind(os.environ.get(ENV_KIND_CLUSTER, "restate-examples"))
    existing = cluster.name in cluster.clusters()
    if not existing:
        started = time.monotonic()
        cluster.create(os.environ.get(ENV_KIND_IMAGE) or None)
        record("kind create cluster (s)", f"{time.monotonic() - started:.1f}")
    try:
        kubeconfig = workdir / "kind.kubeconfig"
        kubeconfig.write_text(cluster.kind("get", "kubeconfig", "--name", cluster.name))
        images = kind_images(cluster)
        sets = list(KIND_REQUESTS)
        if cluster.provider == "podman":  # images.sh's, under the chart's default references
            started = time.monotonic()
            cluster.load(local.build_images())
            record("images built and kind-loaded (s)", f"{time.monotonic() - started:.1f}")
        else:
            for target, key in IMAGE_VALUES.items():
                images.add(REPO_ROOT, target, images.tag, workdir / "images", stage=target)
                sets += ["--set", f"{key}.image.repository=restate-examples-{target}"]
                sets += ["--set", f"{key}.image.tag={images.tag}"]
        yield RealCluster("kind", kubeconfig, bin_dir, workdir, sets, images, kind=cluster)
    finally:
        if not existing:  # fails the run, naming it, if anything stays on the host
            left = cluster.delete()
            assert not left, f"kind left {left} after kind delete cluster (removed now)"


def _local_node(workdir: Path, bin_dir: Path | None) -> Iterator[RealCluster]:
    started_here = local.running() is None
    archive = local.build_images()
    info = local.up(workdir / "local.kubeconfig", images=archive)
    print(f"\nlocal node: {info.server}, timings {info.timings}")
    try:
        images = local_node_images(local.chart_app_version())
        yield RealCluster("local-node", workdir / "local.kubeconfig", bin_dir, workdir, [], images)
    finally:
        if started_here:  # fails the run, naming it, if anything stays on the host
            print(f"local node: stopped; {local.down()}")


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    tier = tiers.tier(tiers.REAL_PODS)  # where they run, as the preflight said
    if not tier.runs:
        pytest.skip(f"{tier.name} tier skipped: {tier.reason}")
    workdir = tmp_path_factory.mktemp("real-cluster")
    bin_dir = _bin_dir()
    external = os.environ.get(ENV_KUBECONFIG)
    if tier.where == tiers.KUBECONFIG and external:
        prefix = os.environ.get(ENV_IMAGE_PREFIX, "")
        sets = []
        tag = local.chart_app_version()
        images: ClusterImages | None = None
        missing = ""
        if prefix:
            for target, key in IMAGE_VALUES.items():
                sets += ["--set", f"{key}.image.repository={prefix}restate-examples-{target}"]
            images = registry_images(prefix, tag)
        elif local.running() is not None:  # e.g. .local/kubeconfig of `make cluster`
            images = local_node_images(tag)
        else:
            missing = (
                f"{ENV_KUBECONFIG} without {ENV_IMAGE_PREFIX}: no registry to push a test's "
                "own image to (set it to one this machine can push to and the nodes pull from)"
            )
        yield RealCluster("kubeconfig", Path(external), bin_dir, workdir, sets, images, missing)
    elif tier.where == tiers.KIND:
        yield from _kind(workdir, bin_dir)
    else:
        yield from _local_node(workdir, bin_dir)
