"""What a real node changes on this host, and how it is put back.

The kubelet, containerd, the CNI bridge and kube-proxy touch host-wide state: sysctls,
iptables chains, a bridge, network namespaces, mounts, cgroups, and a few fixed paths.
``record_sysctls`` saves the values before the node starts; ``clean`` stops whatever a node
left (also one whose run was killed) and restores them. ``clean`` is idempotent: it runs before
every start and at every stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

# The kubelet sets the first three at each start (its "kernel defaults"); the CNI bridge turns
# on forwarding; kube-proxy's conntrack and localnet settings are configured off.
SYSCTLS = (
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
)
# Chains made by kube-proxy, the kubelet and kube-router (KUBE-*), by CNI plugins (CNI-*);
# ours (RX-*). kube-router's ipsets: KUBE-* and kube-router-*.
CHAIN_PREFIXES = ("KUBE-", "CNI-", "RX-")
IPSET_PREFIXES = ("KUBE-", "kube-router-")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def read_sysctls() -> dict[str, str]:
    out = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            out[name] = _sysctl_path(name).read_text().strip()
    return out


def record_sysctls(path: Path) -> None:
    """Saves the current values, unless a saved set exists (from a run that did not clean up:
    those are the values from before any node ran)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(read_sysctls(), indent=2) + "\n")


def restore_sysctls(path: Path) -> dict[str, str]:
    """Writes the saved values back and forgets them; returns what was restored."""
    if not path.exists():
        return {}
    saved: dict[str, str] = json.loads(path.read_text())
    for name, value in saved.items():
        with contextlib.suppress(OSError):
            if _sysctl_path(name).read_text().strip() != value:
                _sysctl_path(name).write_text(value)
    path.unlink()
    return saved


def record_paths(record: Path, paths: Iterable[Path]) -> None:
    """Saves which of `paths` exist before a node starts (other tools share some: podman's CNI
    networks under /var/lib/cni, Docker's containerd under /run/containerd), unless a run that
    did not clean up saved them already."""
    if not record.exists():
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps([str(p) for p in paths if p.exists()]) + "\n")


def recorded_paths(record: Path, paths: Iterable[Path]) -> set[Path]:
    """Those of `paths` that existed before the node started. With nothing saved no node of
    ours started since the last clean stop (it saves them first), so all that exist now."""
    if not record.exists():
        return {p for p in paths if p.exists()}
    return {Path(p) for p in json.loads(record.read_text())}


def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def processes_using(roots: Iterable[Path]) -> list[int]:
    """PIDs whose executable, working directory or command line lies under one of ``roots``
    (a node's components run in its workdir; containerd's shims name its socket), and every
    process in the kubelet's pod cgroups (the containers)."""
    prefixes = [str(r).rstrip("/") + "/" for r in roots]
    found = set(pods_processes())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            places = [os.readlink(entry / "exe"), os.readlink(entry / "cwd") + "/"]
            places.append(
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
            if any(p in place for p in prefixes for place in places):
                found.add(int(entry.name))
    found.discard(os.getpid())
    return sorted(found)


def pods_processes(cgroup: str = "kubepods") -> list[int]:
    """Every process in the kubelet's pod cgroups (v1: the pids hierarchy has them all)."""
    top = CGROUP_ROOT / "pids" / cgroup
    pids: set[int] = set()
    if top.is_dir():
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    return sorted(pids)


def kill_all(pids: Iterable[int], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL whatever is left after ``timeout`` seconds."""
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if alive(p)]
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie has: only its parent's wait is missing)."""
    try:
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except OSError:
        return False


def unmount_under(root: Path) -> None:
    """Unmounts everything mounted under ``root`` (deepest first)."""
    prefix = str(root).rstrip("/") + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target.startswith(prefix) or target == str(root):
            mounts.append(target)
    for target in sorted(set(mounts), key=len, reverse=True):
        run("umount", "-l", target)


def chains(prefixes: tuple[str, ...] = CHAIN_PREFIXES) -> list[str]:
    """The chains named with one of `prefixes`, as ``iptables/nat/CNI-HOSTPORT-DNAT``, in the
    filter, nat and mangle tables, IPv4 and IPv6."""
    found = []
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle"):
            for rule in run(tool, "-w", "-t", table, "-S").stdout.splitlines():
                if rule.startswith("-N ") and rule.split()[1].startswith(prefixes):
                    found.append(f"{tool}/{table}/{rule.split()[1]}")
    return found


def record_chains(path: Path, prefixes: tuple[str, ...]) -> None:
    """Saves which `prefixes` chains exist before a run makes its own, unless a saved set exists
    (from a run that did not clean up: the set from before any ran)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(sorted(chains(prefixes)), indent=2) + "\n")


def delete_recorded_chains(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    """Deletes the `prefixes` chains that were not there when `path` was recorded, and forgets
    the record; returns what was removed."""
    if not path.exists():
        return []
    before = set(json.loads(path.read_text()))
    removed = delete_chains(prefixes, keep=before)
    path.unlink()
    return removed


def delete_chains(
    prefixes: tuple[str, ...] = CHAIN_PREFIXES, keep: Iterable[str] = ()
) -> list[str]:
    """Deletes every KUBE-/CNI-/RX- chain (or those of `prefixes`; not those of `keep`, named
    as ``chains`` names them) and the jumps to them, in the filter, nat and mangle tables, IPv4
    and IPv6. Returns what was removed."""
    kept = set(keep)
    removed = []
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle"):
            rules = run(tool, "-w", "-t", table, "-S").stdout.splitlines()
            chains = [
                r.split()[1]
                for r in rules
                if r.startswith("-N ")
                and r.split()[1].startswith(prefixes)
                and f"{tool}/{table}/{r.split()[1]}" not in kept
            ]
            if not chains:
                continue
            for rule in rules:  # jumps from the built-in chains (rules quote their comments)
                parts = shlex.split(rule)
                if (
                    parts[0] == "-A"
                    and parts[1] not in chains
                    and any(f"-j {c}" in rule or f"--jump {c}" in rule for c in chains)
                ):
                    run(tool, "-w", "-t", table, "-D", *parts[1:])
            for chain in chains:
                run(tool, "-w", "-t", table, "-F", chain)
            for chain in chains:
                run(tool, "-w", "-t", table, "-X", chain)
                removed.append(f"{tool}/{table}/{chain}")
    return removed


def ipsets() -> list[str]:
    if shutil.which("ipset") is None:
        return []
    names = run("ipset", "list", "-name").stdout.split()
    return [n for n in names if n.startswith(IPSET_PREFIXES)]


def delete_ipsets() -> list[str]:
    """Destroys kube-router's ipsets (once no iptables rule refers to them)."""
    found = ipsets()
    for name in found:
        run("ipset", "destroy", name)
    return found


def delete_link(name: str) -> None:
    if Path(f"/sys/class/net/{name}").exists():
        run("ip", "link", "delete", name)


def delete_netns(prefix: str = "cni-") -> None:
    """Network namespaces made for pods (``/run/netns/cni-*``)."""
    netns = Path("/run/netns")
    if not netns.is_dir():
        return
    for ns in netns.iterdir():
        if ns.name.startswith(prefix):
            run("ip", "netns", "delete", ns.name)
            with contextlib.suppress(OSError):
                run("umount", "-l", str(ns))
                ns.unlink()


def remove_cgroups(name: str) -> None:
    """Removes the cgroup ``name`` (and everything below it) from every v1 hierarchy."""
    if not CGROUP_ROOT.is_dir():
        return
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            for _ in range(50):  # a cgroup is removable once its last task has exited
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def leftovers(roots: Iterable[Path], bridge: str, fixed_paths: Iterable[Path]) -> list[str]:
    """What a stopped node would have left on the host; empty when it is clean."""
    roots = list(roots)
    found = [f"process {pid}" for pid in processes_using(roots)]
    prefixes = tuple(str(r).rstrip("/") + "/" for r in roots)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        if target.startswith(prefixes) or target.startswith("/run/netns/cni-"):
            found.append(f"mount {target}")
    if Path(f"/sys/class/net/{bridge}").exists():
        found.append(f"network device {bridge}")
    found += [f"ipset {name}" for name in ipsets()]
    for chain in chains():
        tool, table_chain = chain.split("/", 1)
        found.append(f"{tool} chain {table_chain}")
    if CGROUP_ROOT.is_dir():
        found += [
            f"cgroup {h}/kubepods" for h in CGROUP_ROOT.iterdir() if (h / "kubepods").exists()
        ]
    found += [f"path {p}" for p in fixed_paths if p.exists()]
    return found
