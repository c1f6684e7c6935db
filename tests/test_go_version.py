"""One Go version: GO_VERSION in the control plane's versions.env.

It is the toolchain every go.mod of the repository needs (the builds run with
GOTOOLCHAIN=local, so a go line above it fails the build); the control-plane build checks the
machine's go against it before building, naming both; the README names it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from testkit.restate import REPO
from testkit.tiers import pinned_versions


def tracked(pattern: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--", pattern], cwd=REPO, check=True, capture_output=True, text=True
    )
    return [REPO / line for line in out.stdout.splitlines()]


def versions_env() -> Path:
    (path,) = [p for p in tracked("*versions.env") if (p.parent / "build.sh").exists()]
    return path


def go_version() -> str:
    found = pinned_versions(versions_env()).get("GO_VERSION")  # stated twice: ValueError
    assert found, f"{versions_env()} states no GO_VERSION"
    return found


def parse(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def go_lines() -> dict[str, str]:
    lines = {}
    for mod in tracked("*go.mod"):
        (line,) = re.findall(r"^go (\S+)$", mod.read_text(), re.MULTILINE)
        lines[str(mod.relative_to(REPO))] = line
    return lines


def test_every_go_mod_builds_with_go_version() -> None:
    need = go_version()
    lines = go_lines()
    assert len(lines) >= 8, lines  # the seven control-plane modules and bench/driver
    above = {mod: line for mod, line in lines.items() if parse(line) > parse(need)}
    assert not above, f"these go.mod files need more than GO_VERSION={need}: {above}"
    # And it is not stale: some module needs exactly it (raise and lower it with the modules).
    assert max(parse(line) for line in lines.values()) == parse(need), (need, lines)


def test_readme_names_go_version() -> None:
    assert f"Go {go_version()} or newer" in (REPO / "README.md").read_text()


def check_go(path: str) -> subprocess.CompletedProcess[str]:
    build = versions_env().parent / "build.sh"
    return subprocess.run(
        [str(build), "--check-go"],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_build_accepts_this_machines_go() -> None:
    run = check_go(os.environ["PATH"])
    assert run.returncode == 0, run.stderr
    assert f"needs {go_version()} or newer" in run.stderr


@pytest.mark.parametrize("older", ["too old", "no go"])
def test_build_refuses_an_older_go_naming_both_versions(older: str, tmp_path: Path) -> None:
    """A stand-in `go` reporting the release before GO_VERSION (a unit test of the check)."""
    need = parse(go_version())
    if older == "too old":
        before = ".".join(map(str, (*need[:-1], need[-1] - 1))) if need[-1] else "1.0"
        fake = tmp_path / "go"
        fake.write_text(f"#!/bin/sh\necho go{before}\n")
        fake.chmod(0o755)
        expected = f"found go{before} ({fake})"
    else:
        expected = "found no go on PATH"
    for tool in ("env", "bash", "dirname", "cat", "find", "sort", "sha256sum", "cut", "sed"):
        found = shutil.which(tool)
        assert found, tool
        (tmp_path / tool).symlink_to(found)
    run = check_go(str(tmp_path))  # these tools, and no go but the stand-in
    assert run.returncode == 1, run.stderr
    assert f"needs Go {go_version()} or newer" in run.stderr and expected in run.stderr, run.stderr
