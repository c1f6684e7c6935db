"""A SIGTERM (how CI and process managers stop a run) ends pytest as Ctrl-C does: cleaned up.

Python's default for SIGTERM ends the interpreter at once, so no fixture's teardown runs and
what the fixtures started outlives the run: restate-server and the example services, the
background builds, the local node's host state. Raised as ``KeyboardInterrupt`` instead, the
test in progress stops and pytest runs every finalizer, as after Ctrl-C (exit status 2). A
second SIGTERM, during that clean-up, ends the process the default way.
"""

from __future__ import annotations

import signal
from types import FrameType

import pytest


def interrupt(signum: int, _frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_DFL)
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, interrupt)
