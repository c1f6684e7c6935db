"""Where a Python example service spends its CPU under load: py-spy samples, summarized.

    .venv/bin/python bench/profile.py --scenario subscriptions [--services DIR]

Starts restate-server and the scenario's Python service, runs the scenario's load (wrk or the
driver) while `py-spy record --format raw` samples the service, and prints the share of busy
samples per function (inclusive: the function is on the stack) and per leaf (self time), with
the runtime's own code (`examples_runtime`, logging, prometheus_client, pydantic) singled out.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from bench.harness import CLOCK_TICKS, python_target
from bench.run import SCENARIOS, Run, python_env, setup
from testkit.restate import RestateServer, install_restate

REPO = Path(__file__).resolve().parents[1]

PY_SPY = Path(sys.executable).parent / "py-spy"
# Waiting, not working: Python's own waits (the leaf frame), and with --native the libc and
# interpreter calls a waiting thread sits in (the loop's epoll, a futex, the GIL), which may be
# a frame or two above an unnamed libc leaf.
IDLE = re.compile(r"\((selectors|threading|queue)\.py:\d+\)$|^(select|poll|epoll)\b|\bwait \(")
NATIVE_WAIT = re.compile(
    r"^(epoll_pwait|epoll_wait|syscall|futex\w*|__futex\w*|pthread_cond_\w*wait|sem_\w*wait"
    r"|take_gil|nanosleep|clock_nanosleep) \("
)


def idle(frames: list[str]) -> bool:
    return bool(IDLE.search(frames[-1])) or any(NATIVE_WAIT.match(f) for f in frames[-3:])


# Code that is ours or that only our runtime calls per invocation.
OURS = (
    "examples_runtime/",
    "logging/",
    "prometheus_client/",
    "pydantic",
    "json/",
    "orjson",
    "stubs.py",
)
# Our own per-step code, for the one figure `own share`: a busy sample counts when its leaf
# frame is in the runtime or an example's module, or when one of its frames is in a library
# only our runtime calls per step (logging and JSON, metrics, validation). The ASGI wrappers
# (app.py, shutdown.py, granian_server.py) are on every stack, so only their self time counts.
OWN_CODE = (
    "examples_runtime/",
    "subscriptions/",
    "signup_workflow/",
    "building_blocks/",
    "user_object/",
)
OWN_LIBRARIES = ("logging/", "json/", "orjson", "prometheus_client/", "pydantic")
# Leaf frames of the ASGI wrappers: their self time is the server's native send/receive they
# await (granian's Rust futures are sampled under the Python frame awaiting them), not ours.
ASGI_WRAPPERS = ("tracked (", "drained_app (", "app_on_port (")
# Where the self time (leaf frame) goes, by the first matching part of the frame's file.
# With --native, the SDK's Rust core (`restate_sdk_shared_core`, in `restate/_internal...so`),
# granian's and uvloop's native code show as frames of their own; a leaf in the interpreter
# or libc (`_PyEval...`, `malloc`) goes to the nearest frame above it that has a package.
PACKAGES = (
    ("restate SDK", ("restate/", "restate_sdk", "_internal.cpython")),
    ("hypercorn + h2", ("hypercorn/", "h2/", "hpack/", "hyperframe/")),
    ("granian", ("granian", "_granian")),
    ("asyncio + uvloop", ("asyncio/", "uvloop", "loop.cpython")),
    ("logging + json", ("logging/", "json/", "orjson")),
    ("metrics", ("prometheus_client/",)),
    ("pydantic", ("pydantic",)),
    (
        "examples_runtime + examples",
        (
            "examples_runtime/",
            "subscriptions/",
            "signup_workflow/",
            "building_blocks/",
            "user_object/",
        ),
    ),
    ("fastapi + starlette", ("fastapi/", "starlette/")),
)


# Whose code a busy sample is working for: the innermost frame in one of these (the libraries,
# stdlib, interpreter and libc frames below it work for it: the SDK's `copy.copy` and
# `inspect.signature` are the SDK's, our log line's `logging` and orjson are the runtime's).
# The ASGI wrappers' self time is the server's native send/receive (see ASGI_WRAPPERS).
OWNERS = (
    ("restate SDK: Rust core (restate/_internal)", ("restate/_internal", "restate_sdk")),
    ("restate SDK: Python", ("restate/",)),
    ("ASGI server: granian", ("granian",)),
    ("ASGI server: hypercorn + h2", ("hypercorn/", "h2/", "hpack/", "hyperframe/", "priority/")),
    (
        "event loop: uvloop, asyncio",
        (
            "uvloop",
            "asyncio/",
            "_asynciomodule",
            "(loop.c)",
            "(core.c)",
            "(linux.c)",
            "(loop-watcher.c)",
            "(queue.h)",
            "(stream.c)",
            "(tcp.c)",
            "(handle.c)",
        ),
    ),
    ("our runtime: examples_runtime (its logging, metrics, validation)", ("examples_runtime/",)),
    (
        "example code",
        ("subscriptions/", "signup_workflow/", "building_blocks/", "user_object/", "noop_py"),
    ),
    ("FastAPI + starlette (the examples' HTTP routes)", ("fastapi/", "starlette/")),
)


def owner(frames: list[str]) -> str:
    for depth, frame in enumerate(reversed(frames)):
        if depth == 0 and any(w in frame for w in ASGI_WRAPPERS):
            return "ASGI server: granian"  # its native send/receive, awaited by our wrapper
        for name, parts in OWNERS:
            if any(p in frame for p in parts):
                return name
    return "other: " + frame_name(frames[-1])


def package_of(frame: str) -> str:
    for name, parts in PACKAGES:
        if any(p in frame for p in parts):
            return name
    return "other (" + frame_name(frame).split(" (")[-1].rstrip(")").split("/")[0] + ")"


def owner_of(frames: list[str]) -> str:
    """The package of the innermost frame that has one (the interpreter's and libc's own
    frames, seen with --native, belong to the code that called them)."""
    for frame in reversed(frames):
        name = package_of(frame)
        if not name.startswith("other ("):
            return name
    return package_of(frames[-1])


def frame_name(frame: str) -> str:
    """`greet (user_object/service.py:22)` -> `greet (user_object/service.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


def summarize(raw: Path, top: int) -> str:
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack and samples.isdigit():
            stacks.append((stack.split(";"), int(samples)))
    total = sum(c for _, c in stacks)
    busy = [(s, c) for s, c in stacks if not idle(s)]
    n_busy = sum(c for _, c in busy) or 1
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    owners: Counter[str] = Counter()
    own = 0
    for frames, count in busy:
        leaf_is_ours = any(p in frames[-1] for p in OWN_CODE) and not any(
            w in frames[-1] for w in ASGI_WRAPPERS
        )
        if leaf_is_ours or any(p in f for f in frames for p in OWN_LIBRARIES):
            own += count
        packages[owner_of(frames)] += count
        owners[owner(frames)] += count
        names = [frame_name(f) for f in frames]
        for name in set(names):
            inclusive[name] += count
        leaf[names[-1]] += count
        ours_frames = {n for f, n in zip(frames, names, strict=True) if any(o in f for o in OURS)}
        for name in ours_frames:
            ours[name] += count
    out = [f"samples: {total}, busy (not waiting for I/O): {n_busy} ({100 * n_busy / total:.0f}%)"]
    out.append(
        f"own share (our per-step code: runtime and examples' self time but the ASGI wrappers', "
        f"and logging, JSON, metrics, validation inclusive): {100 * own / n_busy:.1f}% of the "
        "busy samples"
    )
    out.append(f"\n## top {top} by inclusive share of busy samples")
    out += [f"{100 * c / n_busy:5.1f}%  {n}" for n, c in inclusive.most_common(top)]
    out.append(f"\n## top {top} by self share (leaf frame)")
    out += [f"{100 * c / n_busy:5.1f}%  {n}" for n, c in leaf.most_common(top)]
    out.append("\n## self share by package (leaf frame's file, or the nearest frame's with one)")
    out += [f"{100 * c / n_busy:5.1f}%  {n}" for n, c in packages.most_common(top)]
    out.append("\n## busy samples by owner (the innermost frame of the SDK, server, loop, ours)")
    out += [f"{100 * c / n_busy:5.1f}%  {n}" for n, c in owners.most_common(top)]
    out.append("\n## runtime code and what it calls (logging, metrics, validation), inclusive")
    out += [f"{100 * c / n_busy:5.1f}%  {n}" for n, c in ours.most_common(top)]
    return "\n".join(out)


def thread_ticks(pid: int) -> dict[str, int]:
    """utime + stime of each of the process's threads, summed by thread name (granian's and
    the SDK's Rust threads are not Python threads: py-spy does not sample them)."""
    by_name: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        by_name["main (Python)" if task.name == str(pid) else name] += int(fields[11]) + int(
            fields[12]
        )
    return by_name


def thread_split(before: dict[str, int], after: dict[str, int], ops: int) -> str:
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    total = sum(spent.values()) or 1
    per_op = 1000 * total / CLOCK_TICKS / max(ops, 1)
    out = [f"\n## service CPU by thread during the load ({per_op:.2f} ms per operation)"]
    out += [
        f"{100 * v / total:5.1f}%  {1000 * v / CLOCK_TICKS / max(ops, 1):6.3f} ms/op  {k}"
        for k, v in sorted(spent.items(), key=lambda kv: -kv[1])
        if v
    ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", choices=list(SCENARIOS), default="subscriptions")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--services", type=Path, default=None)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None, help="also write the summary here")
    parser.add_argument(
        "--env", action="append", default=[], help="a setting of the service, KEY=VALUE"
    )
    parser.add_argument("--native", action="store_true", help="also sample native frames")
    parser.add_argument("--raw", type=Path, default=None, help="keep py-spy's raw stacks here")
    args = parser.parse_args()
    scenario = SCENARIOS[args.scenario]
    example = scenario.examples[0]
    driver_bin = setup()
    with tempfile.TemporaryDirectory(prefix="restate-profile-") as tmp:
        workdir = Path(tmp)
        server = RestateServer(install_restate(), workdir / "server")
        server.start()
        env = python_env(example, server.ingress_url, args.services)
        env.update(dict(kv.split("=", 1) for kv in args.env))
        app = "bench.noop_py:app" if example == "noop" else None
        service_example = "user-object" if example == "noop" else example
        target = python_target("py", service_example, workdir / "py", env, app)
        try:
            target.start()
            server.register(target.url, force=True)
            run = Run(server.ingress_url, args.seconds, args.connections, 16, driver_bin)
            scenario.load(Run(server.ingress_url, 2, args.connections, 16, driver_bin), target, "w")
            raw = workdir / "profile.txt"
            spy = [
                str(PY_SPY), "record", "--pid", str(target.process.pid), "--format", "raw",
                "--rate", str(args.rate), "--duration", str(int(args.seconds)),
                "--output", str(raw),
                # py-spy reads native stacks only with the process paused for each sample
                *(["--native"] if args.native else ["--nonblocking"]),
            ]  # fmt: skip
            spied: list[subprocess.CompletedProcess[str]] = []
            recorder = threading.Thread(
                target=lambda: spied.append(subprocess.run(spy, capture_output=True, text=True))
            )
            recorder.start()
            before = thread_ticks(target.process.pid)
            load = scenario.load(run, target, "p")
            after = thread_ticks(target.process.pid)
            recorder.join()
            if not raw.exists():
                raise RuntimeError(f"py-spy wrote no profile: {spied[0].stderr if spied else ''}")
            settings = " ".join(args.env) or "defaults"
            summary = f"# {args.scenario} ({settings}): {load.rps:.0f} ops/s under py-spy\n"
            summary += summarize(raw, args.top)
            if args.raw:
                args.raw.parent.mkdir(parents=True, exist_ok=True)
                args.raw.write_bytes(raw.read_bytes())
            summary += thread_split(before, after, load.ops)
        finally:
            target.stop()
            server.stop()
    print(summary)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(summary + "\n")


if __name__ == "__main__":
    main()
