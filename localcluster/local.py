"""The local real cluster: the control plane and one real node on this machine, as a command
(``make cluster`` / ``make cluster-down``) and as the end-to-end tests' fixture. One code
path for both; one such cluster per machine (it owns a bridge, iptables chains, cgroups).

The processes are started detached: ``up`` returns with the cluster running (or reuses a
running one) and records it in ``STATE_DIR/state.json``; ``down`` stops it, in the same or
another process, and removes whatever any earlier run left (``hoststate``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from localcluster import hoststate, node
from localcluster.controlplane import (
    REPO_ROOT,
    Components,
    ControlPlane,
    http_ok,
    resolve_bin_dir,
)

STATE_DIR = Path(os.environ.get("RESTATE_EXAMPLES_NODE_DIR", "/var/lib/restate-examples-node"))
RUN_DIR = Path("/run/restate-examples-node")
CACHE = Path(os.environ.get("RESTATE_EXAMPLES_CACHE", Path.home() / ".cache/restate-examples"))
# The host's values from before the first node started: machine-wide, like the node itself.
SYSCTLS_RECORD = Path("/var/lib/restate-examples-node.sysctls.json")
PATHS_RECORD = Path("/var/lib/restate-examples-node.paths.json")  # FIXED_PATHS there before
# One run on the host's node at a time (e2e, `make e2e-kind`, `make mutants`): flock on it.
NODE_LOCK = Path("/tmp/restate-examples-node.lock")
IMAGES_ARCHIVE = CACHE / "images" / "images.tar"
IMAGES_SH = REPO_ROOT / "localcluster" / "images" / "images.sh"
DEFAULT_KUBECONFIG = REPO_ROOT / ".local" / "kubeconfig"
API_PORT = 6443
NODE_READY_TIMEOUT = 120.0
# Directories the kubelet, containerd and the CNI plugins use whatever their configuration
# says (none exists on a machine that never ran a node; those that existed before the node
# started, PATHS_RECORD, are not the node's to remove).
FIXED_PATHS = (
    Path("/var/lib/kubelet"),
    Path("/run/containerd"),
    Path("/var/lib/cni"),
    Path("/var/log/containers"),
)


@dataclass
class ClusterInfo:
    kubeconfig: str
    """The admin kubeconfig (also copied where the user asked)."""
    server: str
    pids: dict[str, int]
    timings: dict[str, float]


def _state_file() -> Path:
    return STATE_DIR / "state.json"


def running() -> ClusterInfo | None:
    """The recorded cluster, if all its processes live and its API server answers."""
    try:
        info = ClusterInfo(**json.loads(_state_file().read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not all(Path(f"/proc/{pid}").exists() for pid in info.pids.values()):
        return None
    try:
        kubeconfig = json.loads(Path(info.kubeconfig).read_text())
        token = kubeconfig["users"][0]["user"]["token"]
        if not http_ok(f"{info.server}/readyz", token=token, body="ok"):
            return None
    except Exception:
        return None
    return info


def chart_app_version() -> str:
    """The chart's appVersion: the tag of the suite's images (images.sh tags them so)."""
    chart = (REPO_ROOT / "deploy" / "helm" / "restate-examples" / "Chart.yaml").read_text()
    for line in chart.splitlines():
        if line.startswith("appVersion:"):
            return line.split(":", 1)[1].strip().strip('"')
    raise ValueError("the chart has no appVersion")


def podman_env() -> dict[str, str]:
    """podman with images.sh's own storage and configuration (no global setting)."""
    cache = CACHE / "images"
    return {
        **os.environ,
        "CONTAINERS_STORAGE_CONF": str(cache / "storage.conf"),
        "CONTAINERS_CONF": str(cache / "containers.conf"),
        "TMPDIR": str(cache / "tmp"),
    }


def build_images(archive: Path = IMAGES_ARCHIVE) -> Path:
    """Builds (or refreshes, from podman's layer cache) every image into ``archive``."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(IMAGES_SH), "--save", str(archive)], check=True, stdout=subprocess.DEVNULL)
    return archive


def load_images(archive: Path = IMAGES_ARCHIVE) -> list[str]:
    """Loads an image archive into the running node's containerd."""
    return node.load_images(_paths(), archive)


def kill_container(container_id: str, signal: str = "SIGKILL") -> None:
    """Sends ``signal`` to a container's processes through the node's containerd, as the
    kernel (an OOM kill) or a crash would end them: no graceful stop, the kubelet restarts it."""
    node.ctr(_paths(), "task", "kill", "--all", "--signal", signal, container_id)


def _paths(bin_dir: Path | None = None) -> node.NodePaths:
    return node.NodePaths(workdir=STATE_DIR, rundir=RUN_DIR, bin_dir=bin_dir or resolve_bin_dir())


def up(kubeconfig_out: Path = DEFAULT_KUBECONFIG, images: Path | None = None) -> ClusterInfo:
    """Starts the cluster (or reuses the running one), loads ``images`` if given, writes the
    admin kubeconfig to ``kubeconfig_out`` and returns the cluster's record."""
    if os.geteuid() != 0:
        raise PermissionError("the local node needs root (network, cgroups, mounts)")
    info = running()
    if info is None:
        down()
        info = _start(images or (IMAGES_ARCHIVE if IMAGES_ARCHIVE.exists() else None))
    elif images is not None:
        t0 = time.monotonic()
        load_images(images)
        info.timings["images_loaded_s"] = round(time.monotonic() - t0, 1)
    kubeconfig_out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(info.kubeconfig, kubeconfig_out)
    kubeconfig_out.chmod(0o600)
    return info


def _start(images: Path | None) -> ClusterInfo:
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    bin_dir = resolve_bin_dir()
    paths = _paths(bin_dir)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    hoststate.record_sysctls(SYSCTLS_RECORD)
    hoststate.record_paths(PATHS_RECORD, FIXED_PATHS)
    node.setup_network()
    cp = ControlPlane(
        bin_dir,
        STATE_DIR / "controlplane",
        address=node.NODE_IP,
        api_port=API_PORT,
        fake_node=False,
        keep_workdir=True,
        die_with_parent=False,
    )
    cp.prepare()
    cp.kubelet_client = cp.ca.issue(
        "apiserver-kubelet-client",
        common_name="kube-apiserver-kubelet-client",
        organizations=("system:masters",),
    )
    cp.start()
    timings["control_plane_s"] = round(time.monotonic() - t0, 1)
    c = Components(bin_dir, STATE_DIR, die_with_parent=False)
    try:
        node.start_containerd(c, paths)
        if images is not None:
            t1 = time.monotonic()
            node.load_images(paths, images)
            timings["images_loaded_s"] = round(time.monotonic() - t1, 1)
        t1 = time.monotonic()
        node.start_kubelet(c, paths, cp)
        c.wait("kubelet", time.monotonic() + NODE_READY_TIMEOUT, lambda: node.node_ready(cp))
        timings["kubelet_to_node_ready_s"] = round(time.monotonic() - t1, 1)
        node.start_kube_proxy(c, paths, cp)
        node.start_coredns(c, paths, cp)
        node.start_local_path(c, paths, cp)
        node.start_policy_controller(c, paths, cp)
    except BaseException:
        c.stop()
        cp.stop()
        raise
    timings["up_s"] = round(time.monotonic() - t0, 1)
    info = ClusterInfo(
        kubeconfig=str(cp.kubeconfig),
        server=cp.server,
        pids={**cp.pids(), **c.pids()},
        timings=timings,
    )
    _state_file().write_text(json.dumps(asdict(info), indent=2) + "\n")
    return info


def down() -> list[str]:
    """Stops the cluster and removes everything it (or a killed earlier run) left on the host:
    processes, pod containers, mounts, network namespaces, the bridge, iptables chains,
    cgroups, fixed paths; puts the sysctls back. Returns what it found to remove."""
    found: list[str] = []
    existed = hoststate.recorded_paths(PATHS_RECORD, FIXED_PATHS)
    try:
        recorded = ClusterInfo(**json.loads(_state_file().read_text()))
        order = list(reversed(recorded.pids.values()))
    except (OSError, ValueError, TypeError):
        order = []
    # Every component (and the containerd shims), then what runs in the pods' cgroups.
    leftovers = [p for p in hoststate.processes_using([STATE_DIR, RUN_DIR]) if p not in order]
    if leftovers:
        found.append(f"{len(leftovers)} processes not recorded (a killed run's?)")
    hoststate.kill_all(order + leftovers)
    hoststate.kill_all(hoststate.pods_processes(), timeout=5)
    for root in (STATE_DIR, RUN_DIR):
        hoststate.unmount_under(root)
    hoststate.delete_netns()
    chains = hoststate.delete_chains()
    if chains:
        found.append(f"{len(chains)} iptables chains")
    sets = hoststate.delete_ipsets()
    if sets:
        found.append(f"{len(sets)} ipsets")
    if Path(f"/sys/class/net/{node.BRIDGE}").exists():
        found.append(f"bridge {node.BRIDGE}")
    hoststate.delete_link(node.BRIDGE)
    hoststate.remove_cgroups("kubepods")
    for sub in ("device-plugins", "pod-resources", "plugins_registry", "plugins", "pki"):
        shutil.rmtree(Path("/var/lib/kubelet") / sub, ignore_errors=True)
    _remove_if_empty(Path("/var/lib/kubelet"))
    _remove_cni_leftovers()
    restored = hoststate.restore_sysctls(SYSCTLS_RECORD)
    if restored:
        found.append("sysctls restored")
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    ours = [p for p in FIXED_PATHS if p not in existed]
    left = hoststate.leftovers([STATE_DIR, RUN_DIR], node.BRIDGE, ours)
    changed = {k: v for k, v in hoststate.read_sysctls().items() if restored.get(k, v) != v}
    left += [f"sysctl {k}={v} (was {restored[k]})" for k, v in changed.items()]
    if left:
        raise RuntimeError("the local node left this on the host: " + "; ".join(left))
    PATHS_RECORD.unlink(missing_ok=True)
    return found


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def _remove_cni_leftovers() -> None:
    """Files the CNI plugins and containerd keep at fixed paths for our network and shims."""
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        # Our network's results, and the loopback ones containerd's CRI keeps for every pod.
        for pattern in ("restate-examples-*", "cni-loopback-*"):
            for f in results.glob(pattern):
                f.unlink(missing_ok=True)
        _remove_if_empty(results)
        _remove_if_empty(results.parent)
    shims = Path("/run/containerd/s")
    if shims.is_dir() and not any(
        Path(f"/proc/{p}").exists() for p in hoststate.processes_using([Path("/run/containerd")])
    ):
        shutil.rmtree(shims, ignore_errors=True)
        _remove_if_empty(shims.parent)
    for logs in (Path("/var/log/containers"), Path("/var/log/pods")):
        if logs.is_dir():
            for link in logs.iterdir():
                if link.is_symlink() and str(STATE_DIR) in os.readlink(link):
                    link.unlink()
            _remove_if_empty(logs)
