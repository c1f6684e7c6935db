"""Benchmarks the Python example services against the TypeScript SDK and a no-op ceiling.

    .venv/bin/python bench/run.py            # full run (about 20 min): docs/benchmarks.md + .png
    .venv/bin/python bench/run.py --smoke    # a few seconds a scenario, no thresholds, for CI

One real restate-server; the Python services (`python -m examples_runtime`), the same examples
on Restate's TypeScript SDK (`bench/peer-ts`, Node 22) and no-op services all register with it.
Load comes from wrk (single-request scenarios) and a small Go round-trip driver (workflow,
awakeable). Targets compared with each other are run alternately, several times; the report
gives medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from bench import options, report
from bench.harness import (
    BENCH,
    Load,
    Sample,
    Target,
    driver,
    measure,
    python_target,
    ts_target,
    wrk,
)
from testkit.restate import RestateServer, install_restate

REPO = Path(__file__).resolve().parents[1]

SUBSCRIPTION = json.dumps(
    {
        "userId": "Sam Beckett",
        "creditCard": "1234-5678-9012-3456",
        "subscriptions": ["Netflix", "Disney+", "HBO Max"],
    }
)
GREET_KEYS = 1000
DEFAULT_REPORT = REPO / "docs" / "benchmarks.md"  # and README's benchmark paragraph


@dataclass(frozen=True)
class Run:
    """What every load of one benchmark run shares."""

    ingress: str
    seconds: float
    connections: int
    round_trips: int  # concurrent round trips of the driver scenarios
    driver: Path


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    unit: str  # what one operation is
    examples: tuple[str, str]  # (Python example, TypeScript example)
    load: Callable[[Run, Target, str], Load]


def _greet_many(run: Run, t: Target, tag: str) -> Load:
    prefix = f"/GreeterObject{t.suffix}/{tag}-"
    return wrk(run.ingress, prefix, "/greet", GREET_KEYS, '"Hi"', run.connections, run.seconds)


def _greet_hot(run: Run, t: Target, tag: str) -> Load:
    path = f"/GreeterObject{t.suffix}/hot/greet"
    return wrk(run.ingress, path, "", 0, '"Hi"', run.connections, run.seconds)


def _subscriptions(run: Run, t: Target, tag: str) -> Load:
    path = f"/SubscriptionService{t.suffix}/add"
    return wrk(run.ingress, path, "", 0, SUBSCRIPTION, run.connections, run.seconds)


def _noop(run: Run, t: Target, tag: str) -> Load:
    return wrk(run.ingress, f"/Noop{t.suffix}/noop", "", 0, "", run.connections, run.seconds)


def _signup(run: Run, t: Target, tag: str) -> Load:
    name = f"SignupWorkflow{t.suffix}"
    return driver(run.driver, "signup", run.ingress, t.url, name, run.round_trips, run.seconds, tag)


def _blocks(run: Run, t: Target, tag: str) -> Load:
    name = f"MyService{t.suffix}"
    return driver(run.driver, "blocks", run.ingress, t.url, name, run.round_trips, run.seconds, tag)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "greet-many",
            "GreeterObject/greet, 1000 keys",
            "call",
            ("user-object", "greeter"),
            _greet_many,
        ),
        Scenario(
            "greet-hot",
            "GreeterObject/greet, one key",
            "call",
            ("user-object", "greeter"),
            _greet_hot,
        ),
        Scenario(
            "subscriptions",
            "SubscriptionService/add, 3 subscriptions",
            "call",
            ("subscriptions", "subscriptions"),
            _subscriptions,
        ),
        Scenario(
            "signup",
            "SignupWorkflow run/send + click + attach",
            "round trip",
            ("signup-workflow", "signup"),
            _signup,
        ),
        Scenario(
            "blocks",
            "MyService/run (awakeable resolved) + attach",
            "round trip",
            ("building-blocks", "blocks"),
            _blocks,
        ),
        Scenario("noop", "no-op handler (ceiling)", "call", ("noop", "noop"), _noop),
    )
}

# Python variants, each compared with the default (the settings' defaults: 1 worker, HTTP/2)
# and run alternately with it and the TS peer: workers and protocol, then server and event
# loop. The server/loop variant that is the default is left out (it is `py`).
VARIANT_ENV = {
    "py-w2": {"WORKERS": "2"},
    "py-h1": {},  # registered with Restate as HTTP/1.1 request/response
    "py-hc": {"SERVER": "hypercorn", "EVENT_LOOP": "asyncio"},
    "py-uv": {"SERVER": "hypercorn", "EVENT_LOOP": "uvloop"},
    "py-gr": {"SERVER": "granian", "EVENT_LOOP": "uvloop"},
    "py-gra": {"SERVER": "granian", "EVENT_LOOP": "asyncio"},
    "py-312": {},  # the defaults on another interpreter (INTERPRETERS)
    "py-313": {},
}
# Interpreter variants: pyenv's Python, in a venv with the project's pinned dependencies
# (made once into the cache by `interpreter()`).
INTERPRETERS = {"py-312": "3.12", "py-313": "3.13"}
CACHE = Path(os.environ.get("RESTATE_EXAMPLES_CACHE", Path.home() / ".cache/restate-examples"))


def interpreter(minor: str) -> Path | None:
    """A venv's python of pyenv's newest `minor` (3.12, ...) with the pinned dependencies of
    the services, made into the cache on first use; None when pyenv has no such Python."""
    import tomllib

    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(
        (p for p in root.glob(f"{minor}.*") if (p / "bin" / "python").exists()),
        key=lambda p: [int(x) for x in p.name.split(".") if x.isdigit()],
    )
    if not found:
        log(f"no Python {minor} under {root}: its variant is left out")
        return None
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    digest = hashlib.sha256("\n".join(deps).encode()).hexdigest()[:12]
    venv = CACHE / "bench-python" / f"{found[-1].name}-{digest}"
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"making {venv} (Python {found[-1].name}, the services' pinned dependencies)")
        subprocess.run([str(found[-1] / "bin" / "python"), "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *deps], check=True)
    return python


def python_default() -> dict[str, str]:
    """The server and event loop a service runs with when nothing is set."""
    from examples_runtime.settings import Settings

    fields = Settings.model_fields
    return {"SERVER": fields["server"].default, "EVENT_LOOP": fields["event_loop"].default}


SERVER_LOOP_VARIANTS = tuple(
    label
    for label in ("py-hc", "py-uv", "py-gr", "py-gra")
    if VARIANT_ENV[label] != python_default()
)
# The variants a run measures by default (`--variants` picks others): the other server on
# its loop and the interpreters. Workers, HTTP/1.1 and the other loops were measured and
# rejected before (bench/findings.md); they stay selectable.
DEFAULT_VARIANTS = ("py-hc", "py-312", "py-313")
# The scenarios of the variants group.
VARIANT_SCENARIOS = ("greet-many", "subscriptions", "signup")


# The example settings of every benchmark run: no injected failures, short delays. The TS peer
# takes them all; a Python service only its own (it rejects failure settings for steps it
# does not have).
TS_ENV = {
    "FAILURE_PROBABILITIES": '{"create_recurring_payment":0,"create_subscription":0}',
    "BUILDING_BLOCKS_SLEEP_SECONDS": "0",
    "BUILDING_BLOCKS_CANCEL_DELAY_SECONDS": "0.1",
}
PYTHON_SETTINGS = {
    "subscriptions": ("FAILURE_PROBABILITIES",),
    "building-blocks": ("BUILDING_BLOCKS_SLEEP_SECONDS", "BUILDING_BLOCKS_CANCEL_DELAY_SECONDS"),
}


def python_env(example: str, ingress: str, services_dir: Path | None) -> dict[str, str]:
    # services/ for interpreters whose venv does not have the project installed (py-312, ...)
    paths = [str(p) for p in (services_dir, REPO, REPO / "services") if p is not None]
    return {
        "RESTATE_INGRESS_URL": ingress,
        "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(":"),
        **{key: TS_ENV[key] for key in PYTHON_SETTINGS.get(example, ())},
    }


def setup() -> Path:
    """wrk, the TypeScript peer and the Go driver (`bench/setup.sh`); returns the driver."""
    out = subprocess.run(
        ["bash", str(BENCH / "setup.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


T = TypeVar("T")


def williams_rows(n: int) -> list[list[int]]:
    """A balanced Latin square (Williams design) of `n` targets: over its rows each target is
    in each position equally often and directly follows each other target equally often
    (n rows for an even n; for an odd n the n rows and their reverses, 2n)."""
    first = [0]  # 0, 1, n-1, 2, n-2, ...; the other rows are it shifted
    low, high = 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    rows = [[(t + shift) % n for t in first] for shift in range(n)]
    return rows if n % 2 == 0 else rows + [row[::-1] for row in rows]


def alternate(items: Sequence[T], rep: int) -> list[T]:
    """The order of repetition `rep`: row `rep` of a balanced Latin square, so drift of the
    machine, and what the target before leaves behind, spread evenly over all targets (over
    a whole cycle of rows: `len(williams_rows(len(items)))` repetitions)."""
    rows = williams_rows(len(items))
    return [items[i] for i in rows[rep % len(rows)]]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, driver_bin: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.server = RestateServer(install_restate(), workdir / "server")
        self.run = Run(
            ingress=self.server.ingress_url,
            seconds=args.seconds,
            connections=args.connections,
            round_trips=args.round_trips,
            driver=driver_bin,
        )
        self.targets: dict[tuple[str, str], Target] = {}  # (scenario example key, label)
        self.samples: list[Sample] = []
        self.active: dict[str, str] = {}  # Restate deployment URL last registered per example
        self.counter = itertools.count()
        self.interpreters: dict[str, Path] = {}
        for label in args.variants:
            if label in INTERPRETERS and (python := interpreter(INTERPRETERS[label])):
                self.interpreters[label] = python
        # An interpreter pyenv lacks is left out (logged).
        found = self.interpreters
        self.variants = [v for v in args.variants if v in found or v not in INTERPRETERS]

    def python(self, example: str, label: str = "py") -> Target:
        key = (example, label)
        if key not in self.targets:
            services = self.args.candidate if label == "py-cand" else self.args.services
            if label in options.OPTIONS:  # a copy of services/ with the option's edits
                services = options.make(label, self.workdir / label / "services")
            env = python_env(example, self.server.ingress_url, services)
            env.update(VARIANT_ENV.get(label, {}))
            app = "bench.noop_py:app" if example == "noop" else None
            target = python_target(
                label,
                "user-object" if example == "noop" else example,
                self.workdir / f"{label}-{example}",
                env,
                app,
                http_11=label == "py-h1",
                interpreter=self.interpreters.get(label),
            )
            self._start(key, target)
        return self.targets[key]

    def typescript(self, example: str) -> Target:
        key = (example, "ts")
        if key not in self.targets:
            self._start(key, ts_target("ts", example, self.workdir / f"ts-{example}", TS_ENV))
        return self.targets[key]

    def _start(self, key: tuple[str, str], target: Target) -> None:
        log(f"starting {target.label} {key[0]}")
        target.start()
        self.targets[key] = target
        self.activate(key[0], target)

    def activate(self, example: str, target: Target) -> None:
        """Makes `target` the deployment Restate sends this example's invocations to."""
        if self.active.get(f"{example}/{target.suffix}") != target.url:
            self.server.register(target.url, force=True, use_http_11=target.use_http_11)
            self.active[f"{example}/{target.suffix}"] = target.url

    def compare(
        self, scenario: Scenario, targets: list[tuple[str, Target]], group: str = "main"
    ) -> None:
        """Runs `scenario` against each target, alternately, `reps` times (after a warm-up)."""
        if self.args.warmup > 0:
            for example, target in targets:
                self.activate(example, target)
                warm = dataclasses.replace(self.run, seconds=self.args.warmup)
                scenario.load(warm, target, self._tag())
        for rep in range(self.args.reps):
            for target in alternate([t for _, t in targets], rep):
                example = next(e for e, t in targets if t is target)
                self.activate(example, target)
                sample = measure(
                    scenario.name,
                    target,
                    self.server.process.pid,
                    rep,
                    lambda t=target: scenario.load(self.run, t, self._tag()),  # type: ignore[misc]
                )
                log(
                    f"{scenario.name:<13} {target.label:<6} rep {rep}: {sample.rps:8.1f}/s "
                    f"p50 {sample.p50_ms:6.1f} ms p99 {sample.p99_ms:7.1f} ms "
                    f"cpu {sample.service_cpu_ms_per_op:5.2f} ms/op errors {sample.errors}"
                    + (f" ({sample.detail})" if sample.detail else "")
                )
                sample.group = group
                self.samples.append(sample)

    def _tag(self) -> str:
        return f"b{os.getpid()}x{next(self.counter)}"

    def startup(self, reps: int) -> list[dict[str, object]]:
        """Process start to ready, and idle memory, of fresh Python and TypeScript processes."""
        results: list[dict[str, object]] = []
        env = python_env("user-object", self.server.ingress_url, self.args.services)
        for rep in range(reps):
            fresh = [
                python_target("py", "user-object", self.workdir / f"startup-py-{rep}", env),
                ts_target("ts", "greeter", self.workdir / f"startup-ts-{rep}", {}),
            ]
            for target in alternate(fresh, rep):
                target.start()
                target.stop()
                results.append(
                    {
                        "target": target.label,
                        "rep": rep,
                        "startup_s": target.startup_s,
                        "idle_rss_kb": target.idle_rss_kb,
                    }
                )
        return results

    def main(self) -> dict[str, object]:
        self.server.start()
        try:
            scenarios = [SCENARIOS[name] for name in self.args.scenarios]
            for scenario in scenarios if self.args.main else []:
                py_example, ts_example = scenario.examples
                pair = [
                    (py_example, self.python(py_example)),
                    (ts_example, self.typescript(ts_example)),
                ]
                self.compare(scenario, pair)
            if self.variants:
                for name in VARIANT_SCENARIOS:
                    if name not in self.args.scenarios:
                        continue
                    scenario = SCENARIOS[name]
                    example, ts_example = scenario.examples
                    labels = ("py", *self.variants)
                    group = [(example, self.python(example, label)) for label in labels]
                    group.append((ts_example, self.typescript(ts_example)))
                    self.compare(scenario, group, "variants")
            if self.args.candidate:
                for name in self.args.candidate_scenarios:
                    scenario = SCENARIOS[name]
                    example = scenario.examples[0]
                    group = [(example, self.python(example, label)) for label in ("py", "py-cand")]
                    self.compare(scenario, group, "candidate")
            for scenario in scenarios:
                applying = [
                    o for o in self.args.options if scenario.name in options.OPTIONS[o].scenarios
                ]
                if not applying:
                    continue
                example, ts_example = scenario.examples
                group = [(example, self.python(example, label)) for label in ("py", *applying)]
                group.append((ts_example, self.typescript(ts_example)))
                self.compare(scenario, group, "options")
            startup = self.startup(self.args.startup_reps)
            return {
                "samples": [asdict(s) for s in self.samples],
                "startup": startup,
                "targets": [
                    {
                        "example": example,
                        "target": label,
                        "startup_s": t.startup_s,
                        "idle_rss_kb": t.idle_rss_kb,
                        "processes": len(t.pids),
                    }
                    for (example, label), t in self.targets.items()
                ],
            }
        finally:
            for target in self.targets.values():
                target.stop()
            self.server.stop()


def machine() -> dict[str, str]:
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "unknown",
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds, no report")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one load run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up per target, seconds")
    parser.add_argument("--reps", type=int, default=5, help="alternating repetitions")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--round-trips", type=int, default=16, help="driver concurrency")
    parser.add_argument("--scenarios", nargs="*", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument(
        "--variants",
        nargs="*",
        choices=list(VARIANT_ENV),
        default=[v for v in DEFAULT_VARIANTS if VARIANT_ENV[v] != python_default()],
        help="Python variants alternated with the default and the TS peer",
    )
    parser.add_argument("--no-variants", dest="variants", action="store_const", const=[])
    parser.add_argument(
        "--options",
        nargs="*",
        choices=list(options.OPTIONS),
        default=[],
        help="SDK options (bench/options.py) alternated with the default and the TS peer "
        "in the scenarios each applies to (--options alone: all of them)",
    )
    parser.add_argument(
        "--no-main",
        dest="main",
        action="store_false",
        help="leave out the main group (Python against TS); with --options or --candidate",
    )
    parser.add_argument("--startup-reps", type=int, default=2)
    parser.add_argument(
        "--services",
        type=Path,
        default=None,
        help="a copy of services/ to benchmark instead (put first on PYTHONPATH)",
    )
    parser.add_argument(
        "--candidate",
        type=Path,
        default=None,
        help="a changed copy of services/ to compare with the tree's, alternately (py-cand)",
    )
    parser.add_argument(
        "--candidate-scenarios",
        nargs="+",
        choices=list(SCENARIOS),
        default=["greet-many", "subscriptions", "signup"],
    )
    parser.add_argument("--json", type=Path, default=None, help="where to write the raw results")
    parser.add_argument(
        "--report",
        type=Path,
        default=DEFAULT_REPORT,
        help="the Markdown report (the plot goes beside it, .png)",
    )
    parser.add_argument("--no-report", dest="write_report", action="store_false")
    parser.add_argument(
        "--render", type=Path, default=None, help="only rewrite the report from these raw results"
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar="JSON",
        help="only print the medians of two runs' raw results side by side",
    )
    args = parser.parse_args(argv)
    if args.options == [] and "--options" in (sys.argv[1:] if argv is None else argv):
        args.options = list(options.OPTIONS)
    if args.smoke:
        args.seconds, args.warmup, args.reps, args.startup_reps = 1.0, 0.0, 1, 1
        args.variants, args.write_report = [], False
        args.connections, args.round_trips = 8, 4
        if args.scenarios == list(SCENARIOS):
            args.scenarios = ["greet-many", "signup", "blocks", "noop"]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.compare:
        first, second = (json.loads(p.read_text()) for p in args.compare)
        print(report.stability_table(first, second))
        return
    if args.render:
        rendered = json.loads(args.render.read_text())
        report.write(rendered, report.summarize(rendered), args.report)
        if args.report == DEFAULT_REPORT:
            report.write_readme(rendered, report.summarize(rendered))
        log(f"report: {args.report}")
        return
    command = shlex.join(
        [".venv/bin/python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)]
    )
    started = time.time()
    load_start = " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    driver_bin = setup()
    with tempfile.TemporaryDirectory(prefix="restate-bench-") as tmp:
        results = Bench(args, Path(tmp), driver_bin).main()
    results.update(
        machine=machine(),
        command=command,
        seconds=args.seconds,
        reps=args.reps,
        connections=args.connections,
        round_trips=args.round_trips,
        started=time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started)),
        wall_s=round(time.time() - started),
        versions=report.versions(),
        python_default=python_default(),
        load_start=load_start,
        load_end=" / ".join(Path("/proc/loadavg").read_text().split()[:3]),
    )
    json_path = args.json or (BENCH / "results" / ("smoke.json" if args.smoke else "latest.json"))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1))
    log(f"raw results: {json_path}")
    summary = report.summarize(results)
    print(report.ratio_table(summary))
    for group in ("variants", "candidate", "options"):
        if report.scenarios_of(summary, group):
            print(report.variant_table(summary, group, python_default()))
    if args.write_report:
        report.write(results, summary, args.report)
        if args.report == DEFAULT_REPORT:
            report.write_readme(results, summary)
        log(f"report: {args.report}")
    samples: list[dict[str, object]] = results["samples"]  # type: ignore[assignment]
    failed = [s for s in samples if s["ops"] == 0]
    if failed:
        raise SystemExit(f"no operation completed in {len(failed)} load runs: {failed}")


if __name__ == "__main__":
    main()
