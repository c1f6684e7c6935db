"""A SIGTERMed run cleans up (tests/plugins/sigterm.py): CI stops a run with SIGTERM, and what
its fixtures started must not outlive it. Here an inner pytest starts the real services'
fixture (restate-server and the four examples as processes), is sent SIGTERM in the middle of
a test, and every one of those processes must be gone when it has exited."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from localcluster.hoststate import alive, kill_all
from testkit.processes import wait_until
from testkit.restate import REPO

TESTS = REPO / "tests"

INNER = """
    import os, pathlib, time

    def test_holds_the_suite(suite):
        pids = [suite.server.process.pid] + [s.process.pid for s in suite.services.values()]
        pathlib.Path(os.environ["PIDS"]).write_text(" ".join(map(str, pids)))
        time.sleep(300)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc (Linux) for the processes")
def test_a_sigtermed_run_stops_the_processes_its_fixtures_started(
    tmp_path: Path, restate_bin: Path
) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    pids_file = tmp_path / "pids"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "pytest", "-p", "plugins.sigterm", "-p", "plugins.restate"),
            *("-p", "no:cacheprovider", "-q", "test_inner.py"),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(TESTS), "PIDS": str(pids_file)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pids: list[int] = []
    try:
        wait_until(pids_file.exists, timeout=120, what="the inner run's suite to start")
        pids = [int(p) for p in pids_file.read_text().split()]
        assert len(pids) == 5 and all(alive(p) for p in pids), pids
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
        left = [p for p in pids if alive(p)]
    finally:
        proc.kill()
        kill_all(p for p in pids if alive(p))  # a failing run leaves nothing behind either
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "stopped by SIGTERM" in out, out
    assert left == [], out
