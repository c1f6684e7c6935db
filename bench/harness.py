"""Processes under test, the load tools, and what is measured around each load run.

The Restate server and the Python example services come from the test harness
(`testkit.restate`); the TypeScript peer and the no-op services are added here.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from testkit.ports import free_port
from testkit.processes import Process, wait_until
from testkit.restate import REPO, ExampleService

BENCH = REPO / "bench"
PEER_TS = BENCH / "peer-ts"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# --- /proc: CPU time and memory of a process and its children (hypercorn workers) ---------


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (fields 14 and 15 of /proc/<pid>/stat)."""
    ticks = 0
    for pid in pids:
        try:
            fields = _stat(pid)
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def loadavg() -> float:
    """The machine's 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_KB
        except OSError:
            continue
    return total


class RssSampler:
    """Peak resident memory of a process tree while a load runs."""

    def __init__(self, pids: list[int], interval: float = 0.25) -> None:
        self.pids = pids
        self.interval = interval
        self.peak_kb = rss_kb(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_kb = max(self.peak_kb, rss_kb(self.pids))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, rss_kb(self.pids))


# --- services under test -------------------------------------------------------------------


@dataclass
class Target:
    """One service process a scenario can load, registered with the Restate server."""

    label: str  # py, ts, py-w2, py-h1, ...
    suffix: str  # appended to the Restate service names: "" (Python) or "Ts"
    url: str
    process: Process
    ready: Callable[[], bool]
    use_http_11: bool = False
    startup_s: float = 0.0
    idle_rss_kb: int = 0
    pids: list[int] = field(default_factory=list)

    def start(self, timeout: float = 60) -> None:
        started = time.perf_counter()
        self.process.start()
        try:
            wait_until(self.ready, timeout, f"{self.label} to become ready", interval=0.01)
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.process.tail()}") from None
        self.startup_s = time.perf_counter() - started
        time.sleep(0.5)  # let hypercorn's second worker come up too before reading memory
        self.pids = process_tree(self.process.pid)
        self.idle_rss_kb = rss_kb(self.pids)

    def stop(self) -> None:
        self.process.stop()


def python_target(
    label: str,
    example: str,
    workdir: Path,
    env: dict[str, str],
    app: str | None = None,
    http_11: bool = False,
    interpreter: Path | None = None,
) -> Target:
    """An example (or `app`, e.g. the no-op) served by `python -m examples_runtime` (on this
    interpreter, or on `interpreter`: a venv's python with the same pinned dependencies)."""
    workdir.mkdir(parents=True, exist_ok=True)
    service = ExampleService(example, workdir, env)
    if app is not None:
        service.process.command[-1] = app
    if interpreter is not None:
        service.process.command[0] = str(interpreter)
    return Target(
        label=label,
        suffix="",
        url=service.url,
        process=service.process,
        ready=service.ready,
        use_http_11=http_11,
    )


def peer_node() -> Path:
    """Node for the peer: the platform package npm installed for this machine (`bench/setup.sh`)."""
    out = subprocess.run(
        ["node", str(REPO / "scripts" / "npm-platform-bin.cjs"), str(PEER_TS), ".", "node"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Path(out.stdout.strip())


def ts_target(
    label: str, example: str, workdir: Path, env: dict[str, str], http_11: bool = False
) -> Target:
    """The TypeScript peer (`bench/peer-ts`) serving one example on Node 22."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = Process(
        f"ts-{example}",
        [str(peer_node()), str(PEER_TS / "dist" / "main.mjs")],
        {
            "EXAMPLE": example,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PROTOCOL": "h1" if http_11 else "h2",
            **env,
        },
        workdir / f"ts-{example}.log",
    )
    client = httpx.Client(http1=http_11, http2=not http_11, timeout=2)

    def ready() -> bool:
        if not process.running:
            raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
        return client.get(f"{url}/readyz").status_code == 200

    return Target(label, "Ts", url, process, ready, use_http_11=http_11)


# --- load ------------------------------------------------------------------------------------


@dataclass
class Load:
    """What a load tool reports: completed operations and their latency."""

    ops: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    detail: str = ""

    @property
    def rps(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


def wrk(
    url: str, prefix: str, suffix: str, keys: int, body: str, connections: int, seconds: float
) -> Load:
    """wrk with `bench/wrk.lua`: HTTP/1.1 keep-alive connections to the Restate ingress."""
    command = [
        "wrk",
        "-t",
        "2",
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(BENCH / "wrk.lua"),
        url,
        "--",
        prefix,
        suffix,
        str(keys),
        body,
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    r = json.loads(line)
    errors = r["status_errors"] + r["socket_errors"] + r["timeouts"]
    return Load(
        ops=r["requests"] - r["status_errors"],
        seconds=r["duration_us"] / 1e6,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        errors=errors,
    )


def driver(
    binary: Path,
    scenario: str,
    ingress: str,
    service_url: str,
    name: str,
    concurrency: int,
    seconds: float,
    tag: str,
) -> Load:
    """The Go round-trip driver (`bench/driver`) for the multi-request scenarios."""
    command = [
        str(binary),
        "-scenario",
        scenario,
        "-ingress",
        ingress,
        "-service",
        service_url,
        "-name",
        name,
        "-c",
        str(concurrency),
        "-d",
        f"{seconds}s",
        "-tag",
        tag,
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 90)
    if out.returncode != 0:
        raise RuntimeError(f"driver failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    r = json.loads(out.stdout)
    return Load(
        ops=r["completed"],
        seconds=r["seconds"],
        p50_ms=r["p50_ms"],
        p99_ms=r["p99_ms"],
        errors=r["errors"],
        detail=r.get("first_error", ""),
    )


@dataclass
class Sample:
    """One measured load run against one target."""

    scenario: str
    target: str
    rep: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    ops: int
    service_cpu_ms_per_op: float
    server_cpu_ms_per_op: float
    service_rss_peak_kb: int
    detail: str = ""
    group: str = "main"  # targets compared with each other: main, variants, candidate
    load_before: float = 0.0  # the machine's 1-minute load average before the run
    load_after: float = 0.0  # ... and at its end
    machine_busy: float = 0.0  # share of all the machine's CPU busy during the run (0-1)
    others_busy: float = 0.0  # ... of which not the service, restate-server or the load tool


def measure(
    scenario: str, target: Target, server_pid: int, rep: int, load: Callable[[], Load]
) -> Sample:
    """Runs `load` and reads the CPU time and memory of the service and the server around it."""
    pids = process_tree(target.process.pid)
    server_pids = [server_pid]
    load_before = loadavg()
    busy, total = machine_ticks()
    own = os.times()  # the load tools are this process's children
    service_cpu, server_cpu = cpu_seconds(pids), cpu_seconds(server_pids)
    with RssSampler(pids) as rss:
        result = load()
    service_cpu = cpu_seconds(pids) - service_cpu
    server_cpu = cpu_seconds(server_pids) - server_cpu
    now = os.times()
    tools_cpu = sum(now[:4]) - sum(own[:4])
    busy_after, total_after = machine_ticks()
    machine_s = (total_after - total) / CLOCK_TICKS
    busy_s = (busy_after - busy) / CLOCK_TICKS
    ops = max(result.ops, 1)
    return Sample(
        scenario=scenario,
        target=target.label,
        rep=rep,
        rps=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        ops=result.ops,
        service_cpu_ms_per_op=1000 * service_cpu / ops,
        server_cpu_ms_per_op=1000 * server_cpu / ops,
        service_rss_peak_kb=rss.peak_kb,
        detail=result.detail,
        load_before=load_before,
        load_after=loadavg(),
        machine_busy=busy_s / machine_s if machine_s else 0.0,
        others_busy=max(0.0, busy_s - service_cpu - server_cpu - tools_cpu) / machine_s
        if machine_s
        else 0.0,
    )
