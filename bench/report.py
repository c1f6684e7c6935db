"""Medians, ratio tables and the plot of a benchmark run: `docs/benchmarks.md` and `.png`."""

from __future__ import annotations

import importlib.metadata
import json
import statistics
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import PEER_TS, peer_node
from testkit.restate import REPO, install_restate

FINDINGS = REPO / "bench" / "findings.md"
METRICS = ("rps", "p50_ms", "p99_ms", "service_cpu_ms_per_op", "server_cpu_ms_per_op")


@dataclass
class Cell:
    """Medians over the repetitions of one scenario against one target."""

    rps: float
    p50_ms: float
    p99_ms: float
    service_cpu_ms_per_op: float
    server_cpu_ms_per_op: float
    rss_peak_mb: float
    errors: int
    runs: int
    rps_by_rep: dict[int, float]


Key = tuple[str, str, str]  # (group, scenario, target)
Summary = dict[Key, Cell]


def summarize(results: dict[str, Any]) -> Summary:
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for sample in results["samples"]:
        key = (sample.get("group", "main"), sample["scenario"], sample["target"])
        groups[key].append(sample)
    summary: Summary = {}
    for key, samples in groups.items():
        med = {m: statistics.median(s[m] for s in samples) for m in METRICS}
        summary[key] = Cell(
            **med,
            rss_peak_mb=statistics.median(s["service_rss_peak_kb"] for s in samples) / 1024,
            errors=sum(s["errors"] for s in samples),
            runs=len(samples),
            rps_by_rep={s["rep"]: s["rps"] for s in samples},
        )
    return summary


def _num(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def paired(a: Cell | None, b: Cell | None) -> str:
    """Median of the throughput ratios of the runs of one repetition, with their range."""
    if a is None or b is None:
        return "-"
    ratios = sorted(a.rps_by_rep[r] / b.rps_by_rep[r] for r in a.rps_by_rep if b.rps_by_rep.get(r))
    if not ratios:
        return "-"
    median = statistics.median(ratios)
    if len(ratios) == 1:
        return f"{median:.2f}"
    return f"{median:.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def scenarios_of(summary: Summary, group: str) -> list[str]:
    return list(dict.fromkeys(s for g, s, _ in summary if g == group))


def ratio_table(summary: Summary) -> str:
    ceiling = summary.get(("main", "noop", "ts"))
    lines = [
        "| scenario | Python ops/s | TS ops/s | **Py/TS** | Py/ceiling | TS/ceiling "
        "| p50 ms Py / TS "
        "| p99 ms Py / TS | service CPU ms/op Py / TS | server CPU ms/op Py / TS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in scenarios_of(summary, "main"):
        py, ts = summary.get(("main", name, "py")), summary.get(("main", name, "ts"))
        if py is None or ts is None:
            continue
        lines.append(
            f"| {name} | {_num(py.rps)} | {_num(ts.rps)} | **{paired(py, ts)}** "
            f"| {_ratio(py.rps, ceiling.rps if ceiling else None)} "
            f"| {_ratio(ts.rps, ceiling.rps if ceiling else None)} "
            f"| {_num(py.p50_ms, 1)} / {_num(ts.p50_ms, 1)} "
            f"| {_num(py.p99_ms, 1)} / {_num(ts.p99_ms, 1)} "
            f"| {_num(py.service_cpu_ms_per_op, 2)} / {_num(ts.service_cpu_ms_per_op, 2)} "
            f"| {_num(py.server_cpu_ms_per_op, 2)} / {_num(ts.server_cpu_ms_per_op, 2)} |"
        )
    return "\n".join(lines)


VARIANT_NAMES = {
    "py": "default: {SERVER}, {EVENT_LOOP}, 1 worker, HTTP/2",
    "py-w2": "default, 2 workers",
    "py-h1": "default, HTTP/1.1 req/resp",
    "py-hc": "hypercorn, asyncio",
    "py-uv": "hypercorn, uvloop",
    "py-gr": "granian (embedded), uvloop",
    "py-gra": "granian (embedded), asyncio",
    "py-cand": "candidate services (--candidate)",
    "ts": "TypeScript SDK (peer)",
}


# The defaults of runs that did not record them (before SERVER and EVENT_LOOP existed).
OLD_DEFAULT = {"SERVER": "hypercorn", "EVENT_LOOP": "asyncio"}


def variant_table(
    summary: Summary, group: str = "variants", default: dict[str, str] | None = None
) -> str:
    lines = [
        "| scenario | variant | ops/s | vs default | **vs TS** | p50 ms | p99 ms "
        "| service CPU ms/op | server CPU ms/op | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in scenarios_of(summary, group):
        base = summary.get((group, scenario, "py"))
        ts = summary.get((group, scenario, "ts"))
        for label, title in VARIANT_NAMES.items():
            title = title.format(**(default or OLD_DEFAULT))
            cell = summary.get((group, scenario, label))
            if cell is None:
                continue
            lines.append(
                f"| {scenario} | {title} | {_num(cell.rps)} | {paired(cell, base)} "
                f"| **{paired(cell, ts) if label != 'ts' else '1.00'}** "
                f"| {_num(cell.p50_ms, 1)} | {_num(cell.p99_ms, 1)} "
                f"| {_num(cell.service_cpu_ms_per_op, 2)} "
                f"| {_num(cell.server_cpu_ms_per_op, 2)} | {_num(cell.rss_peak_mb, 0)} |"
            )
    return "\n".join(lines)


def process_table(results: dict[str, Any], summary: Summary) -> str:
    startup: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in results["startup"]:
        startup[row["target"]].append(row)
    lines = ["| figure | Python | TypeScript | Py/TS |", "|---|---:|---:|---:|"]

    def med(label: str, key: str) -> float | None:
        rows = startup.get(label)
        return statistics.median(r[key] for r in rows) if rows else None

    py_s, ts_s = med("py", "startup_s"), med("ts", "startup_s")
    lines.append(
        f"| start to ready, s (GreeterObject) | {_num(py_s, 2)} | {_num(ts_s, 2)} "
        f"| {_ratio(py_s, ts_s)} |"
    )
    py_m, ts_m = med("py", "idle_rss_kb"), med("ts", "idle_rss_kb")
    py_mb = py_m / 1024 if py_m else None
    ts_mb = ts_m / 1024 if ts_m else None
    lines.append(
        f"| RSS idle, MB (GreeterObject) | {_num(py_mb)} | {_num(ts_mb)} | {_ratio(py_mb, ts_mb)} |"
    )
    for scenario in scenarios_of(summary, "main"):
        py, ts = summary.get(("main", scenario, "py")), summary.get(("main", scenario, "ts"))
        if py and ts:
            lines.append(
                f"| RSS peak under load, MB ({scenario}) | {_num(py.rss_peak_mb)} "
                f"| {_num(ts.rss_peak_mb)} | {_ratio(py.rss_peak_mb, ts.rss_peak_mb)} |"
            )
    return "\n".join(lines)


def plot(summary: Summary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = {(s, t): cell for (g, s, t), cell in summary.items() if g == "main"}
    scenarios = [
        s for s in scenarios_of(summary, "main") if (s, "py") in main and (s, "ts") in main
    ]
    xs = range(len(scenarios))
    width = 0.38
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    panels = (
        ("throughput, ops/s (median)", "rps"),
        ("p50 latency, ms (bars) and p99 (ticks)", "p50_ms"),
        ("service CPU per op, ms", "service_cpu_ms_per_op"),
    )
    for ax, (title, metric) in zip(axes, panels, strict=True):
        for i, (label, name) in enumerate((("py", "Python"), ("ts", "TypeScript"))):
            values = [getattr(main[(s, label)], metric) for s in scenarios]
            pos = [x + (i - 0.5) * width for x in xs]
            ax.bar(pos, values, width, label=name)
            if metric == "p50_ms":
                p99 = [main[(s, label)].p99_ms for s in scenarios]
                ax.scatter(pos, p99, marker="_", s=200, color="black")
        if metric == "rps" and ("noop", "ts") in main:
            ax.axhline(
                main[("noop", "ts")].rps, color="grey", ls="--", lw=1, label="ceiling (TS no-op)"
            )
        ax.set_title(title)
        ax.set_xticks(list(xs), scenarios, rotation=30, ha="right")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def versions() -> dict[str, str]:
    def out(command: list[str]) -> str:
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=30)
            return (run.stdout or run.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "unknown"

    peer = json.loads((PEER_TS / "package.json").read_text())
    return {
        "restate-server": out([str(install_restate() / "restate-server"), "--version"]),
        "restate-sdk (Python)": importlib.metadata.version("restate-sdk"),
        "hypercorn": importlib.metadata.version("hypercorn"),
        "granian": importlib.metadata.version("granian"),
        "uvloop": importlib.metadata.version("uvloop"),
        "@restatedev/restate-sdk": peer["dependencies"]["@restatedev/restate-sdk"],
        "node": out([str(peer_node()), "--version"]),
        "wrk": out(["wrk", "--version"]).split(" [")[0],
    }


def write(results: dict[str, Any], summary: Summary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    png = path.with_suffix(".png")
    plot(summary, png)
    m = results["machine"]
    findings = FINDINGS.read_text() if FINDINGS.exists() else ""
    default = results.get("python_default") or OLD_DEFAULT
    candidate = ""
    if any(g == "candidate" for g, _, _ in summary):
        candidate = (
            "\n## Candidate services (`--candidate`), alternated with the tree's\n\n"
            + variant_table(summary, "candidate", default)
            + "\n"
        )
    version_lines = "\n".join(f"- {k}: {v}" for k, v in results["versions"].items())
    text = f"""# Benchmarks

Generated by `make bench` (`{results["command"]}`) on {results["started"]}, in
{results["wall_s"]} s. Do not edit by hand: the findings section comes from `bench/findings.md`.

## Machine and setup
- {m["cpu"]}, {m["cores"]} cores, {m["memory"]}, Linux {m["kernel"]}, Python {m["python"]}.
  Shared and noisy: only the ratios of targets measured side by side in this run mean
  anything; absolute numbers move between runs.
{version_lines}
- One restate-server (single node, loopback), every service registered with it at once:
  the Python examples (`python -m examples_runtime`; {default["SERVER"]} on
  {default["EVENT_LOOP"]}, the defaults; 1 worker, HTTP/2 unless
  stated), the same examples on the TypeScript SDK (`bench/peer-ts`, names suffixed `Ts`),
  and no-op services (`NoopTs` is the ceiling; `Noop` is the bare Python SDK).
- Load: wrk, {results["connections"]} HTTP/1.1 connections to the ingress, for the
  single-call scenarios; the Go driver `bench/driver` with {results["round_trips"]} concurrent
  round trips for `signup` (run/send, click with a wrong secret, attach → false) and `blocks`
  (run/send, awakeable id from the service's `GET /awakeables`, resolve, attach).
- Each figure is the median of {results["reps"]} runs of {results["seconds"]:.0f} s; the
  targets compared were run alternately, in a changing order, after a warm-up. Service CPU
  is utime+stime of the service's processes (from /proc) divided by completed operations;
  server CPU likewise for restate-server. Failures injected by the stubs are off.

## Python against TypeScript and the ceiling
Ops are calls (wrk scenarios) or whole round trips (`signup`, `blocks`); ceiling = `NoopTs`.
**Py/TS** is the median of the throughput ratios of the two runs of each repetition (their
range in brackets); the other columns are medians over the repetitions.

{ratio_table(summary)}

![throughput, latency and CPU per operation]({png.name})

## Server, event loop, workers, protocol (Python variants and the TS peer, alternated)
"vs default" and "vs TS": median (range) of the per-repetition throughput ratios to the
default Python service and to the TypeScript peer run in the same repetitions. `SERVER` and
`EVENT_LOOP` select the server and loop (README, settings).

{variant_table(summary, "variants", default)}
{candidate}
## Start-up and memory
{process_table(results, summary)}

{findings}
"""
    path.write_text(text)
