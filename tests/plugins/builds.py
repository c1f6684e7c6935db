"""The Go builds and the images beside the first tests: ``make test`` passes
``--build-beside "controlplane traefik images"`` (``testkit.tiers --targets beside``) instead
of building them before pytest.

Cold, those builds take tens of minutes, and only the tests that start Kubernetes need
them. So when the option names targets, this plugin starts ``make -j2 <targets>`` in the
background (its output in a log under the cache), puts the tests that need none of them first
(the services against a real Restate, the soak, the fuzzing: ``BUILD_FREE``) and makes every
other test wait for the builds before its set-up. A failed build stops the run with the last
lines of its log. Warm, the builds are cache hits that finish in seconds.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from localcluster.local import CACHE
from plugins.measured import record
from testkit.tiers import REPO

BUILD_FREE = ("services", "soak", "fuzz")
"""tests/<folder> whose tests need Restate only, never a Go build: they run first."""
_KEY = pytest.StashKey["_Builds"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--build-beside",
        default="",
        metavar="TARGETS",
        help="make targets (space-separated) built in the background while the tests that "
        "need none of them run first; the other tests wait for them (make test)",
    )


def needs_builds(item: pytest.Item) -> bool:
    """Everything but the tests under tests/<BUILD_FREE> waits (a test put there by mistake
    would only wait longer, never run without its build)."""
    if item.get_closest_marker("kube") or item.get_closest_marker("e2e"):
        return True
    parts = item.path.relative_to(item.config.rootpath).parts
    return not (len(parts) > 2 and parts[0] == "tests" and parts[1] in BUILD_FREE)


@dataclass
class _Builds:
    targets: list[str]
    log_path: Path
    first: int
    """How many tests run before the first one that waits."""
    started: float = field(default_factory=time.monotonic)
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
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

    def wait(self) -> None:
        if self.done or self.proc is None:
            return
        waited = time.monotonic()
        rc = self.proc.wait()
        now = time.monotonic()
        self.done = True
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
    items.sort(key=needs_builds)  # stable: the build-free first, each group in its order
    first = sum(not needs_builds(i) for i in items)
    if first == len(items):
        return  # nothing selected needs them
    builds = _Builds(targets, CACHE / "logs" / "build-beside.log", first)
    builds.start()
    config.stash[_KEY] = builds

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"building `make {' '.join(targets)}` in the background (log {builds.log_path}); "
            f"the {first} tests that need no Go build run first, the others wait for it"
        )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Waits before the test's protocol, outside it: pytest-timeout's timer (`timeout` in
    pyproject.toml) covers set-up, call and tear-down, and a cold build takes longer."""
    builds = item.config.stash.get(_KEY, None)
    if builds is not None and needs_builds(item):
        builds.wait()
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    builds = config.stash.get(_KEY, None)
    if builds is not None:
        builds.stop()
