"""What ``make test`` runs on a machine, and what it skips and why (``testkit.tiers``): the
decision with the machine's facts given, and ``make doctor`` as a user runs it."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from testkit import tiers
from testkit.restate import REPO

# This machine's kind: Linux, root, Debian, Go, npm, no Docker engine, no kind.
HERE = tiers.Facts(
    system="Linux",
    euid=0,
    python=(3, 11),
    npm=True,
    restate_cached=False,
    go_version="go1.26.8",
    go_needed="1.26.7",
    controlplane_built=False,
    docker=False,
    kind=False,
    apt=True,
    kubeconfig=None,
)


def decided(**changes: object) -> dict[str, tiers.Tier]:
    return {t.name: t for t in tiers.decide(dataclasses.replace(HERE, **changes))}  # type: ignore[arg-type]


def test_root_on_linux_runs_every_tier_on_the_local_node() -> None:
    got = decided()
    assert [t.name for t in got.values()] == [tiers.SERVICES, tiers.CONTROL_PLANE, tiers.REAL_PODS]
    assert all(t.runs for t in got.values()), got
    assert got[tiers.REAL_PODS].where == tiers.LOCAL_NODE
    assert tiers.targets(list(got.values())) == [
        "restate",
        "controlplane",
        "node-packages",
        "traefik",
        "images",
    ]


def test_not_root_skips_the_local_node_and_installs_nothing_for_it() -> None:
    got = decided(euid=1000)
    pods = got[tiers.REAL_PODS]
    assert not pods.runs
    assert "needs root" in pods.reason and "no Docker engine" in pods.reason
    assert "node-packages" not in tiers.targets(list(got.values()))
    assert got[tiers.SERVICES].runs and got[tiers.CONTROL_PLANE].runs


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"system": "Darwin"}, "needs Linux; this is Darwin"),
        ({"apt": False}, "needs Debian's apt-get"),
        ({"go_version": None}, "no go on PATH"),
        ({"go_version": "go1.24.3"}, "needs Go 1.26.7 or newer; found go1.24.3"),
    ],
)
def test_local_node_skipped_with_the_reason(changes: dict[str, object], reason: str) -> None:
    got = decided(**changes)
    assert not got[tiers.REAL_PODS].runs
    assert reason in got[tiers.REAL_PODS].reason
    assert "node-packages" not in tiers.targets(list(got.values()))


def test_docker_and_kind_take_the_real_pods_and_no_node_packages() -> None:
    got = decided(docker=True, kind=True, euid=1000, system="Darwin", apt=False)
    assert got[tiers.REAL_PODS].runs and got[tiers.REAL_PODS].where == tiers.KIND
    assert tiers.targets(list(got.values())) == ["restate", "controlplane"]
    # kind without an engine is not kind
    assert not decided(kind=True, euid=1000)[tiers.REAL_PODS].runs


def test_a_kubeconfig_takes_the_cluster_tiers_and_builds_nothing() -> None:
    got = decided(kubeconfig="/k.yaml", go_version=None, euid=1000)
    assert got[tiers.CONTROL_PLANE].runs and got[tiers.REAL_PODS].runs
    assert got[tiers.REAL_PODS].where == tiers.KUBECONFIG
    assert tiers.targets(list(got.values())) == ["restate"]


def test_control_plane_built_needs_no_go_and_services_need_npm() -> None:
    got = decided(go_version=None, controlplane_built=True)
    assert got[tiers.CONTROL_PLANE].runs and got[tiers.REAL_PODS].runs
    assert not decided(go_version=None)[tiers.CONTROL_PLANE].runs
    no_npm = decided(npm=False)[tiers.SERVICES]
    assert not no_npm.runs and "no npm" in no_npm.reason and not no_npm.targets
    assert decided(npm=False, restate_cached=True)[tiers.SERVICES].runs


def test_make_doctor_prints_this_machines_tiers() -> None:
    before = [f"preflight: {t.line()}" for t in tiers.decide(tiers.probe())]
    proc = subprocess.run(
        ["make", "-s", "doctor"], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    )
    lines = proc.stdout.splitlines()
    want = [f"preflight: {t.line()}" for t in tiers.decide(tiers.probe())]
    # make test runs this beside the Go builds: one may have ended since make doctor probed.
    assert lines[1:-1] in (before, want), proc.stdout
    assert lines[-1].startswith("preflight: "), proc.stdout


def test_versions_env_is_read_as_build_sh_sources_it(tmp_path: Path) -> None:
    pins = tiers.pinned_versions()
    assert pins["KUBE_VERSION"].startswith("v1.") and pins["GO_VERSION"] == tiers._go_needed()
    assert not any(name.startswith("#") for name in pins)
    twice = tmp_path / "versions.env"
    twice.write_text("# a comment\nGO_VERSION=1.26.7\n\nGO_VERSION=1.26.8\n")
    with pytest.raises(ValueError, match="GO_VERSION is stated twice"):
        tiers.pinned_versions(twice)


def test_kind_on_podman_takes_the_real_pods_only_when_asked() -> None:
    # make e2e-kind: kind with KIND_EXPERIMENTAL_PROVIDER=podman, no Docker engine
    got = decided(kind=True, kind_podman=True)
    assert got[tiers.REAL_PODS].runs and got[tiers.REAL_PODS].where == tiers.KIND
    assert "podman" in got[tiers.REAL_PODS].reason
    # podman alone (make test here) stays on the local node
    assert decided(kind=True)[tiers.REAL_PODS].where == tiers.LOCAL_NODE
