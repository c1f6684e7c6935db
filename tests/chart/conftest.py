"""Fixtures of the chart tests (the ``kube`` fixture comes from tests/plugins/kube.py)."""

from __future__ import annotations

import pytest
from chart.chartkit import Helm, require_helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm v4 (from the control-plane build) with throw-away state; skips when not built."""
    return Helm(require_helm(), tmp_path_factory.mktemp("helm-home"))
