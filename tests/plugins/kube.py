"""Fixtures of the chart and operator tests: ``kube``, the session's Kubernetes cluster (the
test control plane, or ``RESTATE_EXAMPLES_KUBECONFIG``), and ``namespace``, a fresh namespace
per test. The cluster itself is ``testkit.kube`` over ``localcluster.controlplane``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import tiers
from testkit.kube import (
    CONTROL_PLANE_STAGE,
    ENV_KEEP,
    ENV_KUBECONFIG,
    ControlPlane,
    Kube,
    KubeStartupError,
    resolve_bin_dir,
)


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """The session's Kubernetes cluster (local control plane or RESTATE_EXAMPLES_KUBECONFIG)."""
    tier = tiers.tier(tiers.CONTROL_PLANE)
    if not tier.runs:
        pytest.skip(f"{tier.name} tier skipped: {tier.reason}")
    workdir = tmp_path_factory.mktemp("kube")
    external = os.environ.get(ENV_KUBECONFIG)
    if external:
        try:
            bin_dir: Path | None = resolve_bin_dir(stage=CONTROL_PLANE_STAGE)
        except KubeStartupError:
            bin_dir = None  # kubectl/helm from $PATH
        yield Kube(kubeconfig=Path(external), bin_dir=bin_dir, workdir=workdir)
        return
    try:
        bin_dir = resolve_bin_dir(stage=CONTROL_PLANE_STAGE)  # the node's binaries not needed
    except KubeStartupError as e:
        pytest.fail(str(e), pytrace=False)
    cp = ControlPlane(
        bin_dir, workdir=workdir / "controlplane", keep_workdir=bool(os.environ.get(ENV_KEEP))
    )
    with cp:
        yield Kube(kubeconfig=cp.kubeconfig, bin_dir=bin_dir, workdir=workdir, control_plane=cp)


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    with kube.temp_namespace(request.node.name) as name:
        yield name
