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
from bench.options import OPTIONS
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
    cpu_by_rep: dict[int, float]


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
            cpu_by_rep={s["rep"]: s["service_cpu_ms_per_op"] for s in samples if s["ops"]},
        )
    return summary


def _num(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def ratios(a: Cell, b: Cell, cpu: bool = False) -> list[float]:
    """The ratios a/b of the runs of each repetition (throughput, or service CPU per op)."""
    x, y = (a.cpu_by_rep, b.cpu_by_rep) if cpu else (a.rps_by_rep, b.rps_by_rep)
    return sorted(x[r] / y[r] for r in x if y.get(r))


def paired(a: Cell | None, b: Cell | None, cpu: bool = False) -> str:
    """Median of the ratios of the runs of each repetition, with their range."""
    if a is None or b is None:
        return "-"
    ratios_ = ratios(a, b, cpu)
    return spread(ratios_)


def spread(ratios: list[float]) -> str:
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
        "| scenario | **service CPU/op Py/TS** | service CPU ms/op Py / TS "
        "| **ops/s Py/TS** | Python ops/s | TS ops/s | Py/ceiling | TS/ceiling "
        "| p50 ms Py / TS | p99 ms Py / TS | server CPU ms/op Py / TS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in scenarios_of(summary, "main"):
        py, ts = summary.get(("main", name, "py")), summary.get(("main", name, "ts"))
        if py is None or ts is None:
            continue
        lines.append(
            f"| {name} | **{paired(py, ts, cpu=True)}** "
            f"| {_num(py.service_cpu_ms_per_op, 2)} / {_num(ts.service_cpu_ms_per_op, 2)} "
            f"| **{paired(py, ts)}** | {_num(py.rps)} | {_num(ts.rps)} "
            f"| {_ratio(py.rps, ceiling.rps if ceiling else None)} "
            f"| {_ratio(ts.rps, ceiling.rps if ceiling else None)} "
            f"| {_num(py.p50_ms, 1)} / {_num(ts.p50_ms, 1)} "
            f"| {_num(py.p99_ms, 1)} / {_num(ts.p99_ms, 1)} "
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
    "py-312": "default on Python 3.12",
    "py-313": "default on Python 3.13",
    "py-cand": "candidate services (--candidate)",
    **{label: option.title for label, option in OPTIONS.items()},
    "ts": "TypeScript SDK (peer)",
}


# The defaults of runs that did not record them (before SERVER and EVENT_LOOP existed).
OLD_DEFAULT = {"SERVER": "hypercorn", "EVENT_LOOP": "asyncio"}


def variant_table(
    summary: Summary, group: str = "variants", default: dict[str, str] | None = None
) -> str:
    lines = [
        "| scenario | variant | **service CPU/op vs TS** | service CPU ms/op | CPU/op vs default "
        "| ops/s | ops/s vs default | **ops/s vs TS** | p50 ms | p99 ms "
        "| server CPU ms/op | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in scenarios_of(summary, group):
        base = summary.get((group, scenario, "py"))
        ts = summary.get((group, scenario, "ts"))
        for label, title in VARIANT_NAMES.items():
            title = title.format(**(default or OLD_DEFAULT))
            cell = summary.get((group, scenario, label))
            if cell is None:
                continue
            vs_ts = label != "ts"
            lines.append(
                f"| {scenario} | {title} | **{paired(cell, ts, cpu=True) if vs_ts else '1.00'}** "
                f"| {_num(cell.service_cpu_ms_per_op, 2)} | {paired(cell, base, cpu=True)} "
                f"| {_num(cell.rps)} | {paired(cell, base)} "
                f"| **{paired(cell, ts) if vs_ts else '1.00'}** "
                f"| {_num(cell.p50_ms, 1)} | {_num(cell.p99_ms, 1)} "
                f"| {_num(cell.server_cpu_ms_per_op, 2)} | {_num(cell.rss_peak_mb, 0)} |"
            )
    return "\n".join(lines)


def _range(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    if not values:
        return "-"
    v = sorted(x * scale for x in values)
    return f"{statistics.median(v):.{digits}f} ({v[0]:.{digits}f}-{v[-1]:.{digits}f})"


def load_section(results: dict[str, Any]) -> str:
    """The machine's load before, during and after the run (a shared machine: other work
    competes for the cores, and the ratios are only as steady as this)."""
    samples = results["samples"]
    with_load = [s for s in samples if s.get("machine_busy")]
    if not with_load:
        return "Not recorded by this run."
    cores = results["machine"]["cores"]
    return "\n".join(
        [
            f"- 1/5/15-minute load average at the start: {results.get('load_start', '-')}; "
            f"at the end: {results.get('load_end', '-')} ({cores} cores).",
            "- During the load runs (median and range over the "
            f"{len(with_load)} runs): 1-minute load average at the end of a run "
            f"{_range([s['load_after'] for s in with_load])}; share of the machine's CPU busy "
            f"{_range([s['machine_busy'] for s in with_load], 100, 0)}%, of which "
            f"{_range([s['others_busy'] for s in with_load], 100, 0)}% by processes other than "
            "the service under load, restate-server and the load tool (other work on the machine, "
            "the idle targets of this run).",
        ]
    )


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


def stability_table(first: dict[str, Any], second: dict[str, Any]) -> str:
    """The medians of two runs of the same tree side by side (`bench/run.py --compare`): the
    ratios Py/TS of service CPU per operation and of throughput, and how far apart they are."""
    a, b = summarize(first), summarize(second)
    lines = [
        f"| scenario | CPU/op Py/TS, {first['started']} | {second['started']} | apart "
        f"| ops/s Py/TS, first | second | apart |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in scenarios_of(a, "main"):
        row = [name]
        for cpu in (True, False):
            meds = []
            for summary in (a, b):
                py, ts = summary.get(("main", name, "py")), summary.get(("main", name, "ts"))
                r = ratios(py, ts, cpu) if py and ts else []
                meds.append(statistics.median(r) if r else None)
            x, y = meds
            apart = f"{100 * abs(y - x) / x:.0f}%" if x and y else "-"
            row += [_num(x, 2), _num(y, 2), apart]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


README = REPO / "README.md"
README_BEGIN = "<!-- bench:summary (written by bench/report.py from the last run) -->"
README_END = "<!-- /bench:summary -->"


def _median_of(cells: list[tuple[Cell | None, Cell | None]], cpu: bool) -> list[float]:
    return [statistics.median(r) for a, b in cells if a and b and (r := ratios(a, b, cpu))]


def readme_summary(results: dict[str, Any], summary: Summary) -> str:
    """The README's benchmark paragraph: this run's figures, generated, not typed."""
    default = results.get("python_default") or OLD_DEFAULT
    main = scenarios_of(summary, "main")
    pairs = [(summary.get(("main", s, "py")), summary.get(("main", s, "ts"))) for s in main]
    cpu, rps = _median_of(pairs, cpu=True), _median_of(pairs, cpu=False)
    if not cpu:
        return ""
    per = ", ".join(
        f"{s} {paired(py, ts, cpu=True).split(' ')[0]}"
        for s, (py, ts) in zip(main, pairs, strict=True)
    )
    text = (
        f"In the last run ({results['started']}, {results['reps']} alternated repetitions of "
        f"{results['seconds']:.0f} s; load average {results.get('load_start', '-')} at the "
        f"start) the default Python services ({default['SERVER']}, {default['EVENT_LOOP']}) "
        f"spent {min(cpu):.2f}-{max(cpu):.2f}x the TypeScript SDK's service CPU per operation "
        f"(medians: {per}) and reached {min(rps):.2f}-{max(rps):.2f} of its throughput."
    )
    for label in ("py-hc", "py-gr", "py-312", "py-313"):
        rows = [
            (summary.get(("variants", s, label)), summary.get(("variants", s, "py")))
            for s in scenarios_of(summary, "variants")
        ]
        vs_default = _median_of(rows, cpu=True)
        if vs_default:
            name = VARIANT_NAMES[label]
            text += (
                f" {name[0].upper()}{name[1:]}, alternated in the same run: "
                f"{min(vs_default):.2f}-{max(vs_default):.2f}x the default's CPU per operation "
                f"({', '.join(scenarios_of(summary, 'variants'))})."
            )
    return text


def write_readme(results: dict[str, Any], summary: Summary, readme: Path = README) -> None:
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        return
    before, rest = text.split(README_BEGIN, 1)
    _, after = rest.split(README_END, 1)
    paragraph = readme_summary(results, summary)
    readme.write_text(f"{before}{README_BEGIN}\n{paragraph}\n{README_END}{after}")


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
    if any(g == "options" for g, _, _ in summary):
        candidate += (
            "\n## SDK options (`--options`, `bench/options.py`), alternated with the default and "
            "the TS peer\n\n" + variant_table(summary, "options", default) + "\n"
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
The primary figure is **service CPU/op Py/TS**: the median of the ratios of the service's CPU
per operation in the two runs of each repetition (their range in brackets). On a shared
2-core machine it moves much less than throughput, which restate-server and other work on the
machine share. **ops/s Py/TS** likewise for throughput; the other columns are medians over
the repetitions.

{ratio_table(summary)}

![throughput, latency and CPU per operation]({png.name})

## Server, event loop, workers, protocol (Python variants and the TS peer, alternated)
"vs default" and "vs TS": median (range) of the per-repetition throughput ratios to the
default Python service and to the TypeScript peer run in the same repetitions. `SERVER` and
`EVENT_LOOP` select the server and loop (README, settings).

{variant_table(summary, "variants", default)}
{candidate}
## Machine load
{load_section(results)}

## Start-up and memory
{process_table(results, summary)}

{findings}
"""
    path.write_text(text)
