"""Measure the test control plane: start time to healthy and resident memory; with --node,
the local real cluster (control plane + node) instead (root; stopped after each run).

Usage: .venv/bin/python localcluster/tools/measure.py [--runs N] [--node]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from localcluster import local
from localcluster.controlplane import ControlPlane, resolve_bin_dir
from testkit.processes import rss_bytes


def _control_plane(settle: float) -> tuple[float, dict[str, int]]:
    t0 = time.monotonic()
    with ControlPlane(resolve_bin_dir(), Path(tempfile.mkdtemp())) as cp:
        elapsed = time.monotonic() - t0
        time.sleep(settle)
        return elapsed, cp.rss_bytes()


def _local_cluster(settle: float) -> tuple[float, dict[str, int]]:
    local.down()
    t0 = time.monotonic()
    info = local.up(Path(tempfile.mkdtemp()) / "kubeconfig")
    elapsed = time.monotonic() - t0
    print(f"  timings: {info.timings}", flush=True)
    time.sleep(settle)
    rss = {name: rss_bytes(pid) for name, pid in info.pids.items()}
    local.down()
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before RSS sample")
    parser.add_argument("--node", action="store_true", help="the local real cluster (root)")
    args = parser.parse_args()
    measure = _local_cluster if args.node else _control_plane
    starts: list[float] = []
    for run in range(args.runs):
        elapsed, rss = measure(args.settle)
        starts.append(elapsed)
        total = sum(rss.values())
        parts = ", ".join(f"{k}={v / 2**20:.0f}" for k, v in rss.items())
        print(
            f"run {run + 1}: healthy in {elapsed:.1f}s; RSS {total / 2**20:.0f} MiB ({parts})",
            flush=True,
        )
    print(f"start to healthy: median {statistics.median(starts):.1f}s, max {max(starts):.1f}s")


if __name__ == "__main__":
    main()
