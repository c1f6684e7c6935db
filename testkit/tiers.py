"""What this machine can test, tier by tier, and why a tier is skipped: one decision for the
Makefile (which prerequisites ``make test`` installs), its preflight and ``make doctor`` (the
lines printed), and the pytest plugins (the skip reasons).

Standard library only: it runs with the machine's ``python3`` before the virtualenv exists.

    python -m testkit.tiers             the preflight lines (``make doctor``)
    python -m testkit.tiers --targets   the make targets the runnable tiers need
    python -m testkit.tiers --targets first    those ``make test`` installs before pytest
    python -m testkit.tiers --targets beside   the Go builds and images, run beside the first
                                               tests (tests/plugins/builds.py)
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD_SH = REPO / "localcluster" / "tools" / "build.sh"
VERSIONS_ENV = REPO / "localcluster" / "tools" / "versions.env"
ENV_KUBECONFIG = "RESTATE_EXAMPLES_KUBECONFIG"

SERVICES = "services"
CONTROL_PLANE = "control-plane"
REAL_PODS = "real-pods"
KUBECONFIG = "kubeconfig"
KIND = "kind"
LOCAL_NODE = "local-node"
"""Where the real pods run (``Tier.where``): the providers of tests/plugins/real_cluster.py."""


@dataclass(frozen=True)
class Facts:
    """What the decision depends on, read from the machine by ``probe`` (or given by a test)."""

    system: str
    """``platform.system()``: Linux, Darwin..."""
    euid: int
    python: tuple[int, int]
    npm: bool
    restate_cached: bool
    """The Restate binaries already in the cache (then npm is not needed)."""
    go_version: str | None
    """``go env GOVERSION`` (go1.26.8), None without go."""
    go_needed: str
    controlplane_built: bool
    """The Go builds (control plane, node, helm) already in the cache."""
    docker: bool
    """A Docker engine answers (``docker info``)."""
    kind: bool
    apt: bool
    """Debian's dpkg-query and apt-get."""
    kubeconfig: str | None
    """RESTATE_EXAMPLES_KUBECONFIG."""
    kind_podman: bool = False
    """kind's podman provider asked for (KIND_EXPERIMENTAL_PROVIDER=podman) and podman on PATH
    (``make e2e-kind``)."""


@dataclass(frozen=True)
class Tier:
    name: str
    what: str
    runs: bool
    reason: str
    """Why it runs, or why it is skipped (the pytest skip reason)."""
    targets: tuple[str, ...] = field(default=())
    """The make targets it needs installed (only a tier that runs installs anything)."""
    where: str = ""
    """The real pods' cluster: KUBECONFIG, KIND or LOCAL_NODE (the real-pods tier only)."""

    def line(self) -> str:
        verdict = "runs" if self.runs else "SKIPPED"
        return f"{self.name:<16} {verdict:<8} {self.what}: {self.reason}"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def _go_ok(facts: Facts) -> tuple[bool, str]:
    if facts.controlplane_built:
        return True, "the Go builds are in the cache"
    if facts.go_version is None:
        return False, f"needs Go {facts.go_needed} or newer to build it; no go on PATH"
    if _version(facts.go_version) < _version(facts.go_needed):
        return False, f"needs Go {facts.go_needed} or newer; found {facts.go_version}"
    return True, f"built with {facts.go_version} (needs {facts.go_needed})"


def decide(facts: Facts) -> list[Tier]:
    """The tiers in order, each running or skipped with the reason."""
    tiers: list[Tier] = []

    if facts.python < (3, 11):
        tiers.append(
            Tier(
                SERVICES,
                "the services against a real Restate",
                False,
                f"needs Python 3.11+; found {facts.python[0]}.{facts.python[1]}",
            )
        )
    elif not (facts.npm or facts.restate_cached):
        tiers.append(
            Tier(
                SERVICES,
                "the services against a real Restate",
                False,
                "needs npm to install restate-server; no npm on PATH",
            )
        )
    else:
        how = "restate cached" if facts.restate_cached else "restate from npm"
        tiers.append(
            Tier(
                SERVICES,
                "the services against a real Restate",
                True,
                f"Python {facts.python[0]}.{facts.python[1]}, {how}",
                ("restate",),
            )
        )

    go_ok, go_why = _go_ok(facts)
    if facts.kubeconfig:
        tiers.append(
            Tier(
                CONTROL_PLANE,
                "the control-plane tests (chart, operator)",
                True,
                f"on {ENV_KUBECONFIG}={facts.kubeconfig}",
            )
        )
    else:
        tiers.append(
            Tier(
                CONTROL_PLANE,
                "the control-plane tests (chart, operator)",
                go_ok,
                go_why,
                ("controlplane",) if go_ok else (),
            )
        )

    # Real pods: the first of a kubeconfig, kind, the local node (tests/plugins/real_cluster.py).
    what = "real pods (e2e)"
    if facts.kubeconfig:
        tiers.append(
            Tier(REAL_PODS, what, True, f"on {ENV_KUBECONFIG}={facts.kubeconfig}", where=KUBECONFIG)
        )
        return tiers
    not_kubeconfig = f"not on a kubeconfig: {ENV_KUBECONFIG} is not set"
    if facts.kind and (facts.docker or facts.kind_podman):
        engine = "a Docker engine" if facts.docker else "podman, KIND_EXPERIMENTAL_PROVIDER"
        tiers.append(
            Tier(
                REAL_PODS, what, True, f"on kind ({engine} and kind); {not_kubeconfig}", where=KIND
            )
        )
        return tiers
    missing = [n for n, ok in (("Docker engine", facts.docker), ("kind", facts.kind)) if not ok]
    not_kind = f"not on kind: no {', no '.join(missing)}"
    if facts.system != "Linux":
        why = f"needs Linux; this is {facts.system}"
    elif facts.euid != 0:
        why = "needs root (host-wide mounts, iptables, sysctls); not root, and sudo is never called"
    elif not facts.apt:
        why = "needs Debian's apt-get and dpkg-query for its packages"
    elif not go_ok:
        why = go_why
    else:
        tiers.append(
            Tier(
                REAL_PODS,
                what,
                True,
                f"on the local node (Linux, root, apt); {not_kind}; {not_kubeconfig}",
                ("controlplane", "node-packages", "traefik", "images"),
                where=LOCAL_NODE,
            )
        )
        return tiers
    tiers.append(
        Tier(REAL_PODS, what, False, f"not on the local node: {why}; {not_kind}; {not_kubeconfig}")
    )
    return tiers


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _go_version() -> str | None:
    if shutil.which("go") is None:
        return None
    proc = _run(["go", "env", "GOVERSION"])
    return proc.stdout.strip() if proc and proc.returncode == 0 else None


def pinned_versions(path: Path = VERSIONS_ENV) -> dict[str, str]:
    """The pins of ``versions.env`` (``NAME=value`` lines; comments and blank lines skipped),
    read as build.sh sources them. A name stated twice is an error (which one would win?)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Z_][A-Z0-9_]*)=(\S*)\s*$", line)
        if match is None:
            continue
        name, value = match.groups()
        if name in pins:
            raise ValueError(f"{path}: {name} is stated twice")
        pins[name] = value
    return pins


def _go_needed() -> str:
    found = pinned_versions().get("GO_VERSION")
    assert found, f"no GO_VERSION in {VERSIONS_ENV}"
    return found


def _restate_cached() -> bool:
    text = (REPO / "scripts" / "install-restate.sh").read_text()
    match = re.search(r'RESTATE_VERSION="\$\{RESTATE_VERSION:-([^}]+)\}"', text)
    version = os.environ.get("RESTATE_VERSION") or (match.group(1) if match else "")
    cache = os.environ.get("RESTATE_EXAMPLES_CACHE") or str(
        Path.home() / ".cache" / "restate-examples"
    )
    bin_dir = Path(cache) / "restate" / version / "bin"
    return all(os.access(bin_dir / n, os.X_OK) for n in ("restate-server", "restate", "restatectl"))


def _docker() -> bool:
    if shutil.which("docker") is None:
        return False
    proc = _run(["docker", "info"])
    return proc is not None and proc.returncode == 0


def probe() -> Facts:
    """This machine's facts (read-only: no install, no write)."""
    built = _run([str(BUILD_SH), "--print-bin-dir"])
    return Facts(
        system=platform.system(),
        euid=os.geteuid() if hasattr(os, "geteuid") else -1,
        python=(sys.version_info[0], sys.version_info[1]),
        npm=shutil.which("npm") is not None,
        restate_cached=_restate_cached(),
        go_version=_go_version(),
        go_needed=_go_needed(),
        controlplane_built=built is not None and built.returncode == 0,
        docker=_docker(),
        kind=shutil.which("kind") is not None,
        apt=shutil.which("apt-get") is not None and shutil.which("dpkg-query") is not None,
        kubeconfig=os.environ.get(ENV_KUBECONFIG) or None,
        kind_podman=os.environ.get("KIND_EXPERIMENTAL_PROVIDER") == "podman"
        and shutil.which("podman") is not None,
    )


_cached: list[Tier] | None = None


def tiers() -> list[Tier]:
    """This machine's tiers (probed once per process)."""
    global _cached
    if _cached is None:
        _cached = decide(probe())
    return _cached


def tier(name: str) -> Tier:
    (found,) = [t for t in tiers() if t.name == name]
    return found


BESIDE = ("controlplane", "traefik", "images")
"""The Go builds and the images: tens of minutes when the cache is cold, needed only by the
tests that start Kubernetes. ``make test`` runs them beside the tests that need none of them
(cold, the images took about 6 minutes there, 2026-12-01 22:15, instead of in the first e2e
test's set-up after the builds)."""


def targets(decided: list[Tier], which: str = "all") -> list[str]:
    """The make targets of the tiers that run: ``all``, ``first`` (all but ``BESIDE``) or
    ``beside`` (``BESIDE`` only)."""
    out: list[str] = []
    for t in decided:
        out += [x for x in t.targets if t.runs and x not in out]
    if which == "first":
        return [x for x in out if x not in BESIDE]
    if which == "beside":
        return [x for x in out if x in BESIDE]
    return out


def main(argv: list[str]) -> int:
    decided = tiers()
    if argv[1:2] == ["--targets"] and argv[2:] in ([], ["first"], ["beside"]):
        print(" ".join(targets(decided, *argv[2:])))
        return 0
    if argv[1:]:
        print(f"usage: {argv[0]} [--targets [first|beside]]", file=sys.stderr)
        return 2
    print("preflight: what this machine tests (testkit/tiers.py)")
    for t in decided:
        print(f"preflight: {t.line()}")
    skipped = [t for t in decided if not t.runs]
    print(
        f"preflight: {len(decided) - len(skipped)} tiers run, {len(skipped)} skipped; "
        f"installs for them: {' '.join(targets(decided)) or 'nothing'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
