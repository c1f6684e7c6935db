"""The README's first command: `make run` starts everything, stops on Ctrl-C, keeps state."""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from testkit.processes import Process, wait_until
from testkit.restate import REPO

PORTS = (8080, 9070, 5122, 9081, 9082, 9083, 9084)


def busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_once(tmp_path: Path, log_name: str) -> str:
    """Starts the local run, greets mary, stops it with SIGINT; returns the greeting."""
    process = Process(
        "make-run",
        [sys.executable, str(REPO / "scripts" / "run_local.py")],
        {"RESTATE_DATA_DIR": str(tmp_path / "data")},
        tmp_path / log_name,
    )
    process.start()
    try:
        wait_until(lambda: "Try them" in process.log_text(), 120, "the suite to be registered")
        log = process.log_text()
        for name in ("subscriptions", "building-blocks", "user-object", "signup-workflow"):
            assert f"registered {name}" in log
        greeting = httpx.post(
            "http://localhost:8080/GreeterObject/mary/greet", json="Hi", timeout=30
        ).json()
    finally:
        process.signal(signal.SIGINT)  # Ctrl-C
        code = process.wait(60)
    log = process.log_text()
    assert code in (0, 130), log[-2000:]
    for name in ("restate-server", "subscriptions", "user-object", "signup-workflow"):
        assert f"{name} stopped (rc=0)" in log, f"{name} did not stop cleanly"
    return str(greeting)


def test_make_run_starts_registers_stops_and_keeps_state(tmp_path: Path) -> None:
    taken = [p for p in PORTS if busy(p)]
    if taken:
        pytest.skip(f"the local run needs its standard ports; in use here: {taken}")
    assert run_once(tmp_path, "first.log") == "Hi mary for the 1-th time."
    # Running it again keeps the durable state.
    assert run_once(tmp_path, "second.log") == "Hi mary for the 2-th time."
