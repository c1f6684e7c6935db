"""What the soak (`reliability/soak.py`) and the fuzzer (`reliability/fuzz.py`) share: the
suite they run against, Restate's own tables, their command line, and their results.

Both write their figures into `docs/reliability.json` (one section each); the report
`docs/reliability.md` is rendered from that file (`reliability.report`), so either run
refreshes its own part and keeps the other's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from reliability import report
from testkit.restate import ExampleService, RestateServer

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

C = TypeVar("C", bound="DataclassInstance")  # a run's configuration (a frozen dataclass)


def epoch_seconds(value: object) -> float:
    """An ISO 8601 time (a log record's, Restate's) as epoch seconds."""
    return datetime.fromisoformat(str(value)).timestamp()


def log_time(record: dict[str, Any]) -> float:
    """The wall-clock time (epoch seconds) of a service's JSON log record."""
    return epoch_seconds(record["time"])


def percentile(values: Iterable[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return 0.0
    if len(data) == 1:
        return data[0]
    return statistics.quantiles(data, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


def not_completed(server: RestateServer) -> list[dict[str, Any]]:
    """Restate's view of every invocation that has not completed, with why (sys_invocation)."""
    return server.query(
        "SELECT id, target, status, retry_count, last_failure, scheduled_start_at "
        "FROM sys_invocation WHERE status != 'completed'"
    )


def retried(server: RestateServer) -> list[dict[str, Any]]:
    """Invocations Restate had to attempt more than once (retained ones: idempotent, workflows)."""
    return server.query(
        "SELECT id, target, status, retry_count, last_failure FROM sys_invocation "
        "WHERE retry_count > 1"
    )


@dataclass(frozen=True)
class JournaledRun:
    """One step (`ctx.run`) as Restate's journal holds it: its command, its stored result."""

    name: str
    command_at: float  # when the command entered the journal (epoch s, Restate's clock)
    completion_index: int | None = None  # the result's entry, None if no result stored
    completed_at: float | None = None
    result: Any = None  # the stored value (JSON), None for a failure or no result


@dataclass
class Journal:
    """What Restate recorded of one invocation: its steps by name, and every attempt that
    ended with an error (`sys_journal_events`: appended at, after which entry, message)."""

    runs: dict[str, JournaledRun] = dataclasses.field(default_factory=dict)
    failed_attempts: list[tuple[float, int, str]] = dataclasses.field(default_factory=list)


def journals(server: RestateServer, ids: Iterable[str], chunk: int = 50) -> dict[str, Journal]:
    """The journals of these invocations, from `sys_journal` and `sys_journal_events` (kept
    for completed invocations as long as their journal retention, a day by default here)."""
    found: dict[str, Journal] = {}
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), chunk):
        listed = ", ".join(f"'{i}'" for i in wanted[start : start + chunk])
        entries = server.query(
            "SELECT id, index, entry_type, name, entry_json, appended_at FROM sys_journal "
            f"WHERE id IN ({listed}) ORDER BY id, index"
        )
        commands: dict[tuple[str, int], str] = {}  # (invocation, completion id) -> run name
        for e in entries:
            journal = found.setdefault(str(e["id"]), Journal())
            entry = json.loads(e.get("entry_json") or "{}")
            if e.get("entry_type") == "Command: Run":
                run = entry["Command"]["Run"]
                commands[(str(e["id"]), int(run["completion_id"]))] = str(run["name"])
                journal.runs.setdefault(
                    str(run["name"]),
                    JournaledRun(str(run["name"]), epoch_seconds(e["appended_at"])),
                )
            elif e.get("entry_type") == "Notification: Run":
                done = entry["Notification"]["Completion"]["Run"]
                name = commands.get((str(e["id"]), int(done["completion_id"])))
                if name is None or journal.runs[name].completion_index is not None:
                    continue
                success = done.get("result", {}).get("Success")
                journal.runs[name] = dataclasses.replace(
                    journal.runs[name],
                    completion_index=int(e["index"]),
                    completed_at=epoch_seconds(e["appended_at"]),
                    result=json.loads(bytes(success)) if success else None,
                )
        for event in server.query(
            "SELECT id, after_journal_entry_index, appended_at, event_json "
            f"FROM sys_journal_events WHERE id IN ({listed}) AND event_type = 'TransientError'"
        ):
            found.setdefault(str(event["id"]), Journal()).failed_attempts.append(
                (
                    epoch_seconds(event["appended_at"]),
                    int(event.get("after_journal_entry_index", 0)),
                    str(json.loads(event.get("event_json") or "{}").get("error_message", "")),
                )
            )
    for journal in found.values():
        journal.failed_attempts.sort()
    return found


def invocations_by_key(server: RestateServer, service: str, handler: str) -> dict[str, int]:
    """How many invocations of this handler Restate knows per key (a workflow's `run`: 1)."""
    rows = server.query(
        "SELECT target_service_key AS key, count(*) AS n FROM sys_invocation "
        f"WHERE target_service_name = '{service}' AND target_handler_name = '{handler}' "
        "GROUP BY target_service_key"
    )
    return {str(r["key"]): int(r["n"]) for r in rows}


def greeter_counts(server: RestateServer) -> dict[str, int]:
    """The `count` state of every GreeterObject key, as Restate stores it."""
    rows = server.query(
        "SELECT service_key, value_utf8 FROM state "
        "WHERE service_name = 'GreeterObject' AND key = 'count'"
    )
    return {str(r["service_key"]): int(json.loads(r["value_utf8"])) for r in rows}


def services_healthy(services: Iterable[ExampleService]) -> dict[str, bool]:
    import httpx

    healthy = {}
    for service in services:
        try:
            healthy[service.name] = httpx.get(f"{service.url}/healthz", timeout=5).text == "ok"
        except httpx.HTTPError:
            healthy[service.name] = False
    return healthy


class StubFollower:
    """Follows the services' JSON logs and calls `on_stub(service, record)` for every new
    `stub executed` line (a real execution of a pretend external system), from a thread."""

    def __init__(
        self,
        services: Iterable[ExampleService],
        on_stub: Callable[[str, dict[str, Any]], None],
        interval: float = 0.05,
    ) -> None:
        self.services = list(services)
        self.on_stub = on_stub
        self.interval = interval
        self._offsets: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stub-follower", daemon=True)

    def __enter__(self) -> StubFollower:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for service in self.services:
                offset = self._offsets.get(service.name, 0)
                try:
                    with service.process.log_path.open("rb") as f:
                        f.seek(offset)
                        chunk = f.read()
                except OSError:
                    continue
                end = chunk.rfind(b"\n") + 1  # complete lines only
                self._offsets[service.name] = offset + end
                for line in chunk[:end].splitlines():
                    if b'"stub executed"' not in line:
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:  # a line cut by a SIGKILL
                        continue
                    self.on_stub(service.name, record)
            self._stop.wait(self.interval)


# --- results and report ----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def save(section: str, result: dict[str, Any], path: Path = report.RESULTS) -> None:
    """Stores one harness's figures in the results file and re-renders the report."""
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data[section] = result
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    report.write(data)


def run_cli(
    section: str,
    description: str,
    configs: tuple[C, C],
    run: Callable[[C, Path], dict[str, Any]],
    option: tuple[str, str, str],
    summary: Callable[[dict[str, Any]], dict[str, Any]],
    failed: Callable[[dict[str, Any]], bool],
) -> NoReturn:
    """The command line of a reliability run: ``--short`` (``configs[1]``, pytest's) or the
    full run (``configs[0]``), ``option`` = (flag, config field, help) to change one figure,
    ``--keep DIR`` for the logs and Restate's data, ``--no-save``; prints ``summary(result)``,
    saves it as ``section`` of the results, exits 1 if ``failed(result)``."""
    flag, field_name, help_text = option
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--short", action="store_true", help="the short version (pytest's)")
    parser.add_argument(flag, type=int, dest="figure", metavar=field_name.upper(), help=help_text)
    parser.add_argument("--no-save", action="store_true", help="do not write docs/reliability.*")
    parser.add_argument("--keep", type=Path, help="keep the logs and Restate's data here")
    args = parser.parse_args()
    config = configs[1] if args.short else configs[0]
    if args.figure:
        config = dataclasses.replace(config, **{field_name: args.figure})
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(config, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix=f"{section}-") as workdir:
            result = run(config, Path(workdir))
    print(json.dumps(summary(result), indent=1, default=str))
    if not args.no_save:
        save(section, result)
        print(f"wrote {report.REPORT.relative_to(report.REPO)}")
    raise SystemExit(1 if failed(result) else 0)
