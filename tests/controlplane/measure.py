"""Measure the test control plane: start time to healthy and resident memory.

Usage: PYTHONPATH=tests .venv/bin/python tests/controlplane/measure.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from testkit.kube import ControlPlane, resolve_bin_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before RSS sample")
    args = parser.parse_args()
    bin_dir = resolve_bin_dir()
    starts: list[float] = []
    for run in range(args.runs):
        t0 = time.monotonic()
        with ControlPlane(bin_dir) as cp:
            elapsed = time.monotonic() - t0
            starts.append(elapsed)
            time.sleep(args.settle)
            rss = cp.rss_bytes()
            total = sum(rss.values())
            parts = ", ".join(f"{k}={v / 2**20:.0f}" for k, v in rss.items())
            print(
                f"run {run + 1}: healthy in {elapsed:.1f}s; RSS {total / 2**20:.0f} MiB ({parts})",
                flush=True,
            )
    print(f"start to healthy: median {statistics.median(starts):.1f}s, max {max(starts):.1f}s")


if __name__ == "__main__":
    main()
