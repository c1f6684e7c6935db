"""WORKERS > 1: that many processes of this runtime, whatever the server, sharing the ports.

Each worker is `python -m examples_runtime --worker <app>` with `WORKERS=1`; it binds with
SO_REUSEPORT and the kernel spreads the connections. Their metrics are shared through files
(prometheus-client's multiprocess mode), so any worker's /metrics shows all. SIGTERM and SIGINT
are passed on (each worker drains on its own, shutdown.py); the exit code is 0 when every
worker's is. A worker that exits on its own ends the others and the process (its orchestrator
restarts it) with that worker's code.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time

from examples_runtime.settings import Settings

logger = logging.getLogger("examples_runtime.workers")


def supervise(settings: Settings, app_path: str) -> int:
    stopping = False
    workers: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    with tempfile.TemporaryDirectory(prefix="metrics-") as metrics_dir:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir, "WORKERS": "1"}
        command = [sys.executable, "-m", "examples_runtime", "--worker", app_path]
        workers += [subprocess.Popen(command, env=env) for _ in range(settings.workers)]
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, forward)
        while not stopping:
            exited = [w.returncode for w in workers if w.poll() is not None]
            if exited:
                logger.error("a worker exited (code %s): stopping the others", exited[0])
                forward(signal.SIGTERM, None)
                for worker in workers:
                    worker.wait()
                return exited[0] or 1
            time.sleep(0.1)
        codes = [worker.wait() for worker in workers]
    # A worker still starting when the signal came ends by the signal's default action: it
    # had not installed its handler, so it was not serving yet and nothing was in flight there.
    return next((code for code in codes if code not in (0, -signal.SIGTERM, -signal.SIGINT)), 0)
