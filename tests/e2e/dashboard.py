"""One panel of the Grafana dashboard drawn from Prometheus's query API (matplotlib), so the
README can show what the dashboard looks like with real data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from e2e.monitoring import PrometheusApi

from localcluster.controlplane import REPO_ROOT

DASHBOARD = (
    REPO_ROOT / "deploy" / "helm" / "restate-examples" / "dashboards" / "restate-examples.json"
)
PANEL = "Handler attempt latency (p50, p95, p99)"


def render_latency_panel(prom: PrometheusApi, namespace: str, path: Path, minutes: int = 5) -> Path:
    """Draws the dashboard's latency panel for the last ``minutes`` into ``path`` (PNG)."""
    dashboard = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in dashboard["panels"] if p["title"] == PANEL]
    end = time.time()
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    styles = {"p50": ":", "p95": "--", "p99": "-"}
    for target in panel["targets"]:
        expr = target["expr"].replace("$namespace", namespace).replace("$__rate_interval", "1m")
        quantile = target["legendFormat"].split()[0]
        if quantile not in ("p50", "p99"):
            continue
        for series in prom.query_range(expr, end - 60 * minutes, end, 5):
            labels = series["metric"]
            points = [(float(t), float(v)) for t, v in series["values"] if v != "NaN"]
            if not points:
                continue
            xs = [t - end for t, _ in points]
            ys = [v * 1000 for _, v in points]
            handler = f"{labels['service']}/{labels['handler']}"
            ax.plot(xs, ys, styles[quantile], marker=".", label=f"{quantile} {handler}")
    ax.set_title(f"{PANEL} (namespace {namespace})")
    ax.set_xlabel("seconds (0 = now)")
    ax.set_ylabel("milliseconds")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
