"""`make node-packages` never changes what the machine already has.

A machine with Docker's packages has `containerd.io`, which provides and conflicts with
`containerd` and `runc`: installing Debian's `runc` there would remove it (and Docker).
Here a real Debian package like it is built with dpkg-deb and installed into a throwaway root
(`dpkg --root`), and `localcluster/node-packages.sh --plan --root` (the real dpkg-query and a real
`apt-get -s` with this machine's apt lists) must use it, not plan to replace it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.restate import REPO

NODE_PACKAGES = REPO / "localcluster" / "node-packages.sh"
APT_LISTS = Path("/var/lib/apt/lists")


@pytest.fixture
def root() -> Iterator[Path]:
    """An empty dpkg root, readable by an unprivileged user too."""
    if not any(APT_LISTS.glob("*_Packages*")):
        pytest.fail(f"no apt lists in {APT_LISTS}: run `apt-get update` (as root) once")
    with tempfile.TemporaryDirectory(prefix="node-packages-") as tmp:
        path = Path(tmp)
        path.chmod(0o755)
        dpkg = path / "var" / "lib" / "dpkg"
        for sub in ("info", "updates"):
            (dpkg / sub).mkdir(parents=True)
        (dpkg / "status").touch()
        (dpkg / "available").touch()
        yield path


def install_deb(root: Path, name: str, fields: dict[str, str], files: dict[str, str]) -> None:
    """Builds a package with dpkg-deb and installs it into `root` with `dpkg --root`."""
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()
    build = root.parent / f"{root.name}-build-{name}"
    (build / "DEBIAN").mkdir(parents=True)
    control = {
        "Package": name,
        "Version": "1.7.27-1",
        "Architecture": arch,
        "Maintainer": "restate-examples tests <tests@localhost>",
        **fields,
        "Description": f"stand-in for {name}, built by {Path(__file__).name}",
    }
    (build / "DEBIAN" / "control").write_text("".join(f"{k}: {v}\n" for k, v in control.items()))
    for rel, text in files.items():
        (build / rel).parent.mkdir(parents=True, exist_ok=True)
        (build / rel).write_text(text)
        (build / rel).chmod(0o755)
    deb = build.with_suffix(".deb")
    try:
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-b", str(build), str(deb)],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["dpkg", "--force-not-root", f"--root={root}", "-i", str(deb)],
            check=True,
            capture_output=True,
        )
    finally:
        shutil.rmtree(build)
        deb.unlink(missing_ok=True)


def plan(root: Path) -> tuple[dict[str, list[str]], str]:
    """`node-packages.sh --plan --root`: its 'plan: KIND ...' lines, and its log."""
    run = subprocess.run(
        [str(NODE_PACKAGES), "--plan", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines: dict[str, list[str]] = {}
    for line in run.stdout.splitlines():
        kind, _, rest = line.removeprefix("plan: ").partition(" ")
        lines[kind] = [] if rest == "(none)" else rest.split()
    return lines, run.stderr


def test_uses_dockers_containerd_io_instead_of_replacing_it(root: Path) -> None:
    install_deb(
        root,
        "containerd.io",
        {
            "Provides": "containerd, runc",
            "Conflicts": "containerd, runc",
            "Replaces": "containerd, runc",
        },
        {"usr/share/doc/containerd.io/README": "no binaries: the test is about Provides\n"},
    )
    lines, log = plan(root)
    assert lines["remove"] == [], log
    assert "refused" not in lines, log
    assert "containerd" not in lines["install"] and "runc" not in lines["install"], lines
    assert "podman" in lines["install"], lines  # what the root really lacks is planned
    assert "uses the installed containerd.io for runc" in log, log


def test_uses_a_runc_installed_outside_packages(root: Path) -> None:
    binary = root / "usr" / "local" / "bin" / "runc"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    lines, log = plan(root)
    assert "runc" not in lines["install"], lines
    assert f"uses {binary} for runc" in log, log


def test_refuses_a_plan_that_removes_an_installed_package(root: Path) -> None:
    """A package that conflicts with runc without providing it: installing runc would remove
    it, so the tier is skipped with that reason instead."""
    install_deb(
        root,
        "runc-other-source",
        {"Conflicts": "runc"},
        {"usr/share/doc/runc-other-source/README": "conflicts, provides nothing\n"},
    )
    lines, log = plan(root)
    assert lines["remove"] == ["runc-other-source"], lines
    assert "refused" in lines, lines
    assert "skipped: installing" in log and "would remove runc-other-source" in log, log


def as_unprivileged(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Runs as nobody when the tests run as root (else as the user running them)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "nobody", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_not_root_skips_before_writing_anything(root: Path) -> None:
    """Unprivileged: a clear skip, and nothing attempted (no policy-rc.d, no apt-get)."""
    # On this system itself, for a package it lacks (the path of bench/setup.sh's wrk too).
    absent = "restate-examples-not-a-package"
    run = as_unprivileged([str(REPO / "scripts" / "apt-install-missing.sh"), absent])
    assert "Permission denied" not in run.stderr and "E: " not in run.stderr, run.stderr
    assert f"apt: skipped: needs root to install {absent}" in run.stderr, run.stderr
    assert run.returncode == 3, run.stderr
    # node-packages.sh, on the empty root (everything missing): the tier is skipped, and
    # `make test` goes on (exit 0).
    run = as_unprivileged([str(NODE_PACKAGES), "--root", str(root)])
    assert "node packages: skipped: needs root to install podman" in run.stderr, run.stderr
    assert run.returncode == 0, run.stderr
