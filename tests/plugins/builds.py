"""The Go builds and the images beside the first tests: ``make test`` passes
``--build-beside "controlplane traefik images"`` (``testkit.tiers --targets beside``) instead
of building them before pytest.

Cold, those builds take tens of minutes, and only the tests that start Kubernetes need
them. So when the option names targets, this plugin starts ``make -j2 <targets>`` in the
background (its output in a log under the cache) and runs the tests in three groups:

1. the tests that need none of it (the services against a real Restate, the soak, the
   fuzzing, the suite's own tools in tests/ itself: ``BUILD_FREE``), at once;
2. the tests that need only the control plane (the chart, the operator, the kube tests:
   ``CONTROL_PLANE_ONLY``), as soon as build.sh has published it (it builds the control plane
   first: ``build.sh --print-bin-dir control-plane``), while the rest still builds;
3. every other test (e2e, ``whole_build``), once the builds have ended.

A failed build stops the run with the last lines of its log. Warm, the builds are cache hits
that finish in seconds.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import IO

import pytest

from localcluster.controlplane import CONTROL_PLANE_STAGE, KubeStartupError, resolve_bin_dir
from localcluster.local import CACHE
from plugins.measured import record
from testkit.tiers import REPO

BUILD_FREE = ("", "services", "soak", "fuzz")
"""tests/<folder> ("" for tests/ itself) whose tests need no Go build: they run first."""
CONTROL_PLANE_ONLY = ("chart", "kube", "operator_tests")
"""tests/<folder> whose tests need the control plane only (etcd, the Kubernetes binaries,
kwok, helm), unless marked ``whole_build``: they run once it is built."""
POLL_SECONDS = 2.0
_KEY = pytest.StashKey["_Builds"]()


class Needs(IntEnum):
    """What of the builds a test needs, in the order the groups run."""

    NOTHING = 0
    CONTROL_PLANE = 1
    ALL = 2


def needs(item: pytest.Item) -> Needs:
    """By the test's folder and markers (a test put in the wrong folder would only wait
    longer, never run without its build)."""
    if item.get_closest_marker("e2e") or item.get_closest_marker("whole_build"):
        return Needs.ALL
    if item.get_closest_marker("kube"):
        return Needs.CONTROL_PLANE
    parts = item.path.relative_to(item.config.rootpath).parts
    if not parts or parts[0] != "tests":
        return Needs.ALL
    folder = parts[1] if len(parts) > 2 else ""
    if folder in BUILD_FREE:
        return Needs.NOTHING
    return Needs.CONTROL_PLANE if folder in CONTROL_PLANE_ONLY else Needs.ALL


def control_plane_built() -> bool:
    """build.sh has published the control plane (the rest may still be building): the
    ``kube`` fixture would find it."""
    try:
        resolve_bin_dir(stage=CONTROL_PLANE_STAGE)
    except KubeStartupError:
        return False
    return True


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--build-beside",
        default="",
        metavar="TARGETS",
        help="make targets (space-separated) built in the background while the tests that "
        "need none of them run first; the other tests wait for them (make test)",
    )


@dataclass
class _Builds:
    targets: list[str]
    log_path: Path
    first: int
    """How many tests run before the first one that waits."""
    started: float = field(default_factory=time.monotonic)
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    control_plane: bool = False
    """The control plane is built (the tests that need only it may run)."""
    done: bool = False

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = self.log_path.open("wb")
        make = os.environ.get("MAKE", "make")
        self.proc = subprocess.Popen(
            [make, "--no-print-directory", "-j2", *self.targets],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped whole at the end
        )

    def wait(self, what: Needs) -> None:
        """Until what the test needs is built: the control plane, or the whole build."""
        if self.done or self.proc is None or what is Needs.NOTHING:
            return
        if what is Needs.CONTROL_PLANE and self.control_plane:
            return
        waited = time.monotonic()
        if what is Needs.CONTROL_PLANE and "controlplane" in self.targets:
            while self.proc.poll() is None:
                if control_plane_built():
                    self.control_plane = True
                    now = time.monotonic()
                    record(
                        "the control plane of the builds beside (build.sh --print-bin-dir "
                        f"{CONTROL_PLANE_STAGE})",
                        f"built {now - self.started:.0f} s after the start; this test waited "
                        f"{now - waited:.0f} s",
                    )
                    return
                time.sleep(POLL_SECONDS)
        rc = self.proc.wait()
        now = time.monotonic()
        self.done = self.control_plane = True
        if self.log is not None:
            self.log.close()
        if rc != 0:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])
            pytest.exit(
                f"the background build `make {' '.join(self.targets)}` failed (exit {rc}); "
                f"its log, {self.log_path}, ends:\n{tail}",
                returncode=1,
            )
        record(
            f"builds beside the first {self.first} tests (make {' '.join(self.targets)})",
            f"done {now - self.started:.0f} s after the start; this test waited "
            f"{now - waited:.0f} s; log {self.log_path}",
        )

    def stop(self) -> None:
        """Stops the builds if the run ends before they do (-x, Ctrl-C): nothing is left."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.log is not None and not self.log.closed:
            self.log.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    targets = shlex.split(config.getoption("--build-beside"))
    if not targets:
        return
    items.sort(key=needs)  # stable: group by group, each in its order
    first = sum(needs(i) is Needs.NOTHING for i in items)
    if first == len(items):
        return  # nothing selected needs them
    builds = _Builds(targets, CACHE / "logs" / "build-beside.log", first)
    builds.start()
    config.stash[_KEY] = builds

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"building `make {' '.join(targets)}` in the background (log {builds.log_path}); "
            f"the {first} tests that need no Go build run first, the others wait for it "
            "(the chart, operator and kube tests for the control plane only)"
        )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Waits before the test's protocol, outside it: pytest-timeout's timer (`timeout` in
    pyproject.toml) covers set-up, call and tear-down, and a cold build takes longer."""
    builds = item.config.stash.get(_KEY, None)
    if builds is not None:
        builds.wait(needs(item))
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    builds = config.stash.get(_KEY, None)
    if builds is not None:
        builds.stop()
