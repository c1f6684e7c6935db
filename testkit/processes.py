"""Real processes for tests: started, stopped and killed with real signals, logs kept in files."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")


class GiveUp(Exception):
    """Raised by a polled check when waiting longer cannot help (the process it waits for has
    exited): `eventually` re-raises it at once instead of polling until its timeout."""


class ProcessExited(GiveUp, RuntimeError):
    """The process a check waits for is gone."""


def eventually(
    check: Callable[[], T | None], timeout: float = 60.0, what: str = "", interval: float = 0.2
) -> T:
    """Polls `check` until it returns something truthy, and returns that; raises TimeoutError
    naming `what` (and the last error or value seen) after `timeout` seconds. A `GiveUp` raised
    by `check` ends the wait at once (any other exception means "not yet")."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except GiveUp:
            raise
        except Exception as e:  # the thing polled is not up yet
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Polls `check` until it is true; fails the test with `what` after `timeout` seconds."""
    eventually(check, timeout, what, interval)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """SIGKILL the child when the process that started it dies without stopping it."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (0 if it has exited)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM a process this one did not start (e.g. recorded by an earlier run), then SIGKILL
    it if it is still there after `timeout` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


class Process:
    """One child process whose output goes to a log file; restartable with the same command."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.die_with_parent = die_with_parent
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.command,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def signal(self, signum: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Waits for the process to exit and returns its exit code."""
        assert self.popen is not None
        code = self.popen.wait(timeout)
        if self._log:
            self._log.close()
            self._log = None
        return code

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.popen is None:
            return
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.wait(timeout)

    def kill(self) -> None:
        if self.running:
            self.signal(signal.SIGKILL)
        self.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def json_records(self) -> list[dict[str, Any]]:
        """The structured (JSON) log records the process wrote, across all its restarts."""
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):  # a line cut by a SIGKILL
                    records.append(json.loads(line))
        return records

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def rss_bytes(self) -> int:
        """Resident memory of the running process (0 once it has exited)."""
        return rss_bytes(self.pid) if self.popen is not None else 0
