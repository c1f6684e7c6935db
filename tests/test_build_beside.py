"""`make test` runs the Go builds beside the first tests (tests/plugins/builds.py): the tests
that need no Go build run first, while the builds run; every other test waits for them; a
failed build stops the run with its log; a run that ends first leaves no build running.

Each case runs pytest on a small suite with the plugin, and `MAKE` set to a script standing
in for make (the real `make controlplane traefik` is what `make test` runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from testkit.processes import wait_until

TESTS = Path(__file__).resolve().parent

SUITE = {
    # Collected first (chart < services), but it needs the builds: it must run last, after them.
    "tests/chart/test_needs.py": """
        import os, pathlib
        def test_needs_the_build():
            log = pathlib.Path(os.environ["EVENTS"])
            assert "built" in log.read_text().split(), "ran before the build finished"
            with log.open("a") as f:
                f.write("needs\\n")
    """,
    "tests/services/test_free.py": """
        import os, pathlib
        def test_free_one():
            with pathlib.Path(os.environ["EVENTS"]).open("a") as f:
                f.write("free\\n")
        def test_free_two():
            assert os.environ.get("FAIL_FREE") != "1", "asked to fail"
            with pathlib.Path(os.environ["EVENTS"]).open("a") as f:
                f.write("free\\n")
    """,
}


def start_suite(tmp_path: Path, make_body: str, *args: str, **env: str) -> subprocess.Popen[str]:
    root = tmp_path / "suite"
    for rel, body in SUITE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(body))
    (root / "pytest.ini").write_text("[pytest]\n")
    make = tmp_path / "make"
    make.write_text("#!/bin/sh\n" + textwrap.dedent(make_body))
    make.chmod(0o755)
    (tmp_path / "events").write_text("")
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "pytest", "-p", "plugins.sigterm", "-p", "plugins.builds"),
            *("-p", "no:cacheprovider"),
            *("-v", "--build-beside", "controlplane traefik", *args),
        ],
        cwd=root,
        env={
            **os.environ,
            "PYTHONPATH": str(TESTS),
            "MAKE": str(make),
            "EVENTS": str(tmp_path / "events"),
            "RESTATE_EXAMPLES_CACHE": str(tmp_path / "cache"),
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_suite(tmp_path: Path, make_body: str, *args: str, **env: str) -> tuple[int, str, Path]:
    proc = start_suite(tmp_path, make_body, *args, **env)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()  # a hung run is not left behind (no-op once it has ended)
    return proc.returncode, out, tmp_path / "events"


def test_the_build_free_tests_run_beside_the_build_and_the_others_wait_for_it(
    tmp_path: Path,
) -> None:
    # The build finishes only after both build-free tests have run: they cannot have waited.
    rc, out, events = run_suite(
        tmp_path,
        """
        echo "$@" > "$EVENTS.args"
        n=0  # at most 10 s: a test that waits for the build would wait for ever
        while [ "$(grep -c free "$EVENTS")" -lt 2 ] && [ $n -lt 100 ]; do
          sleep 0.1; n=$((n+1))
        done
        sleep 3  # longer than the run's --timeout: the wait is not the test's time
        echo built >> "$EVENTS"
        """,
        "-p", "timeout", "--timeout", "2",
    )  # fmt: skip
    assert rc == 0, out
    assert events.read_text().split() == ["free", "free", "built", "needs"], out
    args = Path(f"{events}.args").read_text().split()
    assert args == ["--no-print-directory", "-j2", "controlplane", "traefik"]
    assert "the 2 tests that need no Go build run first" in out


def test_a_failed_build_stops_the_run_with_its_log(tmp_path: Path) -> None:
    rc, out, events = run_suite(tmp_path, 'echo "go: module not found: boom"; exit 3\n')
    assert rc == 1, out
    assert "failed (exit 3)" in out and "go: module not found: boom" in out, out
    assert events.read_text().split() == ["free", "free"], out  # the waiting test never ran


def test_a_sigterm_stops_the_build_too(tmp_path: Path) -> None:
    """CI stops a run with SIGTERM: pytest ends as after Ctrl-C (plugins.sigterm), and the
    build, in a process group of its own, goes too."""
    root, events = tmp_path, tmp_path / "events"
    proc = start_suite(root, 'echo $$ > "$EVENTS.pid"\nexec sleep 300\n')
    wait_until(lambda: Path(f"{events}.pid").exists(), timeout=30, what="the build started")
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "stopped by SIGTERM" in out, out
    pid = int(Path(f"{events}.pid").read_text())
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, what="the build stopped")


def test_a_run_that_ends_first_leaves_no_build_running(tmp_path: Path) -> None:
    rc, out, events = run_suite(
        tmp_path, 'echo $$ > "$EVENTS.pid"\nexec sleep 300\n', "-x", FAIL_FREE="1"
    )
    assert rc == 1 and "asked to fail" in out, out
    pid = int(Path(f"{events}.pid").read_text())
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, what="the build stopped")
