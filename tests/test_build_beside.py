"""`make test` runs the Go builds beside the first tests (tests/plugins/builds.py): the tests
that need no Go build run first, while the builds run; the chart, operator and kube tests wait
for the control plane only; every other test waits for the whole build; a failed build stops
the run with its log; a run that ends first leaves no build running.

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
from testkit.tiers import BUILD_SH

TESTS = Path(__file__).resolve().parent

SUITE = {
    # Collected first (e2e < services), but it needs the builds: it must run last, after them.
    "tests/e2e/test_needs.py": """
        import os, pathlib
        def test_needs_the_build():
            log = pathlib.Path(os.environ["EVENTS"])
            assert "built" in log.read_text().split(), "ran before the build finished"
            with log.open("a") as f:
                f.write("needs\\n")
    """,
    # The suite's own tools, in tests/ itself, need no Go build either.
    "tests/test_tool.py": """
        import os, pathlib
        def test_free_tool():
            with pathlib.Path(os.environ["EVENTS"]).open("a") as f:
                f.write("free\\n")
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


# The control plane's tests and one that needs the whole build (test_control_plane_first).
STAGED = {
    "tests/operator_tests/test_cp.py": """
        import os, pathlib
        def test_needs_the_control_plane_only():
            log = pathlib.Path(os.environ["EVENTS"])
            assert "built" not in log.read_text().split(), "waited for the whole build"
            assert pathlib.Path(os.environ["STAGES"]).is_file(), "ran before the control plane"
            with log.open("a") as f:
                f.write("control-plane\\n")
    """,
    "tests/chart/test_whole.py": """
        import os, pathlib, pytest
        pytestmark = pytest.mark.whole_build
        def test_needs_the_whole_build():
            log = pathlib.Path(os.environ["EVENTS"])
            assert "built" in log.read_text().split(), "ran before the build finished"
            with log.open("a") as f:
                f.write("whole\\n")
    """,
}


def start_suite(
    tmp_path: Path, make_body: str, *args: str, suite: dict[str, str] = SUITE, **env: str
) -> subprocess.Popen[str]:
    root = tmp_path / "suite"
    for rel, body in suite.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(body))
    (root / "pytest.ini").write_text("[pytest]\nmarkers =\n  whole_build: the whole build\n")
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


def run_suite(
    tmp_path: Path, make_body: str, *args: str, suite: dict[str, str] = SUITE, **env: str
) -> tuple[int, str, Path]:
    proc = start_suite(tmp_path, make_body, *args, suite=suite, **env)
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
        while [ "$(grep -c free "$EVENTS")" -lt 3 ] && [ $n -lt 100 ]; do
          sleep 0.1; n=$((n+1))
        done
        sleep 3  # longer than the run's --timeout: the wait is not the test's time
        echo built >> "$EVENTS"
        """,
        "-p", "timeout", "--timeout", "2",
    )  # fmt: skip
    assert rc == 0, out
    assert events.read_text().split() == ["free", "free", "free", "built", "needs"], out
    args = Path(f"{events}.args").read_text().split()
    assert args == ["--no-print-directory", "-j2", "controlplane", "traefik"]
    assert "the 3 tests that need no Go build run first" in out


def test_the_control_plane_tests_start_once_it_is_built_while_the_rest_builds(
    tmp_path: Path,
) -> None:
    """The stand-in for make publishes the control plane where build.sh's own check finds it
    (`build.sh --print-bin-dir control-plane`), then ends only once the control plane's test
    has run: that test cannot have waited for the whole build; the whole_build one does."""
    key = subprocess.run([BUILD_SH, "--print-key"], capture_output=True, text=True, check=True)
    tools = subprocess.run(
        [BUILD_SH, "--print-tools", "control-plane"], capture_output=True, text=True, check=True
    )
    dest = tmp_path / "cache" / "controlplane" / key.stdout.strip()
    rc, out, events = run_suite(
        tmp_path,
        f"""
        n=0  # at most 10 s each: a test that waits for the build would wait for ever
        while [ "$(grep -c free "$EVENTS")" -lt 3 ] && [ $n -lt 100 ]; do
          sleep 0.1; n=$((n+1))
        done
        mkdir -p {dest}/bin {dest}/etc
        for t in {tools.stdout.strip()}; do printf '#!/bin/sh\n' > {dest}/bin/$t; done
        chmod +x {dest}/bin/*
        touch "$STAGES"
        n=0
        while ! grep -q control-plane "$EVENTS" && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
        echo built >> "$EVENTS"
        """,
        suite={**SUITE, **STAGED},
        STAGES=str(dest / "etc" / "kwok-stages.yaml"),
    )
    assert rc == 0, out
    assert events.read_text().split() == ["free", "free", "free", "control-plane", "built", "whole",
                                          "needs"], out  # fmt: skip
    assert "[measured] the control plane of the builds beside" in out, out


def test_a_failed_build_stops_the_run_with_its_log(tmp_path: Path) -> None:
    rc, out, events = run_suite(tmp_path, 'echo "go: module not found: boom"; exit 3\n')
    assert rc == 1, out
    assert "failed (exit 3)" in out and "go: module not found: boom" in out, out
    assert events.read_text().split() == ["free", "free", "free"], out  # no waiting test ran


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
