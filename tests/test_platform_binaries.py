"""`make run` on Linux and macOS, x86-64 and arm64: the native binaries are the ones npm chose.

`scripts/install-restate.sh` (restate-server, the restate CLI, restatectl) and `bench/setup.sh`
(Node for the TypeScript peer) find their binaries through the platform package npm installed,
never a platform name of their own. Here npm installs each of the four platforms' packages on
request (`--os`/`--cpu`, as it would on that machine), and the binary found must be that
platform's, judged from its file header. The npm trees stay in the cache, so a later run only
resolves and reads headers.
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from testkit.restate import REPO

CACHE = (
    Path(os.environ.get("RESTATE_EXAMPLES_CACHE", Path.home() / ".cache" / "restate-examples"))
    / "platform-test"
)
RESOLVER = REPO / "scripts" / "npm-platform-bin.cjs"
PEER = REPO / "bench" / "peer-ts"

# npm's OS-CPU -> what the file header must say.
PLATFORMS = {
    "linux-x64": "ELF x86-64",
    "linux-arm64": "ELF aarch64",
    "darwin-x64": "Mach-O x86-64",
    "darwin-arm64": "Mach-O arm64",
}
ELF_MACHINES = {0x3E: "x86-64", 0xB7: "aarch64"}
MACHO_CPUS = {0x01000007: "x86-64", 0x0100000C: "arm64"}


def binary_kind(path: Path) -> str:
    """'ELF x86-64', 'Mach-O arm64'... from the executable's header (one architecture only)."""
    with path.open("rb") as f:
        header = f.read(20)
    if header[:4] == b"\x7fELF":
        assert header[5] == 1, f"{path}: big-endian ELF"
        (machine,) = struct.unpack_from("<H", header, 18)
        return f"ELF {ELF_MACHINES.get(machine, hex(machine))}"
    if header[:4] == b"\xcf\xfa\xed\xfe":  # MH_MAGIC_64, little-endian
        (cpu,) = struct.unpack_from("<I", header, 4)
        return f"Mach-O {MACHO_CPUS.get(cpu, hex(cpu))}"
    return f"unknown header {header[:8].hex()}"


def host_platform() -> str:
    system = {"Linux": "linux", "Darwin": "darwin"}[platform.system()]
    cpu = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}
    return f"{system}-{cpu[platform.machine().lower()]}"


def install_restate(env: dict[str, str]) -> Path:
    out = subprocess.run(
        [str(REPO / "scripts" / "install-restate.sh")],
        env={**os.environ, "RESTATE_EXAMPLES_CACHE": str(CACHE), **env},
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=900,
    )
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(900)  # only the first run downloads (about 150 MB per platform)
@pytest.mark.parametrize("npm_platform", PLATFORMS)
def test_restate_binaries_are_the_platform_package_npm_chose(npm_platform: str) -> None:
    bin_dir = install_restate({"RESTATE_PLATFORM": npm_platform})
    for name in ("restate-server", "restate", "restatectl"):
        binary = (bin_dir / name).resolve()
        assert binary.parts[-3] == f"{name}-{npm_platform}", binary  # the package it came from
        assert binary_kind(binary) == PLATFORMS[npm_platform], binary


@pytest.mark.timeout(900)
@pytest.mark.parametrize("npm_platform", PLATFORMS)
def test_peer_node_is_the_platform_package_npm_chose(npm_platform: str) -> None:
    """bench/setup.sh's `npm ci`, as on that platform; Node found the way setup.sh finds it."""
    project = CACHE / f"peer-ts-{npm_platform}"
    project.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        if (
            not (project / name).exists()
            or (project / name).read_bytes() != (PEER / name).read_bytes()
        ):
            shutil.copyfile(PEER / name, project / name)
            shutil.rmtree(project / "node_modules", ignore_errors=True)
    if not (project / "node_modules").exists():
        os_name, cpu = npm_platform.split("-")
        subprocess.run(
            [
                "npm",
                "ci",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--omit=dev",
                "--ignore-scripts",
                f"--os={os_name}",
                f"--cpu={cpu}",
            ],
            cwd=project,
            check=True,
            timeout=900,
        )
    out = subprocess.run(
        ["node", str(RESOLVER), str(project), ".", "node"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    binary = Path(out.stdout.strip()).resolve()
    assert binary_kind(binary) == PLATFORMS[npm_platform], binary


@pytest.mark.timeout(900)
def test_this_machine_gets_and_runs_its_own_binaries() -> None:
    """No platform asked: npm picks this machine's package, and the binaries run here."""
    bin_dir = install_restate({"RESTATE_PLATFORM": ""})
    for name in ("restate-server", "restate", "restatectl"):
        binary = (bin_dir / name).resolve()
        assert binary_kind(binary) == PLATFORMS[host_platform()], binary
        run = subprocess.run(
            [str(bin_dir / name), "--version"], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0 and "1." in run.stdout + run.stderr, run


def test_resolver_refuses_a_tree_without_a_platform_package(tmp_path: Path) -> None:
    """npm installed none of the platform packages (an unsupported machine): a clear error."""
    package = tmp_path / "node_modules" / "@restatedev" / "restate-server"
    package.mkdir(parents=True)
    (package / "package.json").write_text(
        '{"name": "@restatedev/restate-server", "optionalDependencies": '
        '{"@restatedev/restate-server-linux-x64": "1.7.12"}}'
    )
    run = subprocess.run(
        ["node", str(RESOLVER), str(tmp_path), "@restatedev/restate-server", "restate-server"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    assert "found none" in run.stderr and "restate-server-linux-x64" in run.stderr, run.stderr
