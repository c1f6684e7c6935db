"""Fixtures of the services' tests: the real Restate server and the example services as
processes (``testkit.restate``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import tiers
from testkit.restate import Suite, SuiteFactory, install_restate, start_suite


def skip_unless_runs(name: str) -> None:
    """Skips the test, with the reason, where this machine cannot run tier ``name``
    (``testkit.tiers``: the same decision as the preflight's)."""
    tier = tiers.tier(name)
    if not tier.runs:
        pytest.skip(f"{tier.name} tier skipped: {tier.reason}")


@pytest.fixture(scope="session")
def restate_bin() -> Path:
    skip_unless_runs(tiers.SERVICES)
    return install_restate()


@pytest.fixture(scope="session")
def suite(restate_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    """The four examples, with failures injected as in the original, behind one server."""
    started = start_suite(
        restate_bin,
        tmp_path_factory.mktemp("suite"),
        env={"BUILDING_BLOCKS_SLEEP_SECONDS": "0.2", "BUILDING_BLOCKS_CANCEL_DELAY_SECONDS": "1"},
    )
    yield started
    started.close()


@pytest.fixture
def make_suite(restate_bin: Path, tmp_path: Path) -> Iterator[SuiteFactory]:
    """Starts a private server and services for a test that kills, crashes or reconfigures."""
    factory = SuiteFactory(restate_bin, tmp_path)
    yield factory
    for started in factory.started:
        started.close()
