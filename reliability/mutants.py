"""`make mutants`: does each promise of the README have a test that fails when it breaks?

Each mutant in `mutants.toml` breaks one promise on purpose (an edit of one place in the
code, the chart or the operator, named for what it breaks) and names the tests that claim
that promise. For each mutant the edit is made in the work tree, those tests run, and the
file is put back. A mutant is *killed* when a test fails, *survives* when they all pass (the
promise has no real proof), and is *stale* when its edit no longer matches the code (the list
must follow the code). The report goes into docs/reliability.md between its markers: one row
per mutant, with the time of the run that produced it (`--only` updates those rows); each
run's pytest output is kept in `.mutants-logs/`.

    .venv/bin/python -m reliability.mutants            # all; exit 1 unless all are killed
    .venv/bin/python -m reliability.mutants --only NAME [--only NAME ...]
    .venv/bin/python -m reliability.mutants --list

Named mutants rather than a generator (mutmut, cosmic-ray): the promises are few and the
tests that hold them start real servers and pods, minutes a run; a generator's hundreds of
mutants a file would take days here, and most would mutate logging and error text.
A run killed midway leaves the original of the mutated file in `.mutants/`; the next run puts
it back before anything else.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from localcluster.local import NODE_LOCK
from reliability.report import MUTANTS_BEGIN as BEGIN
from reliability.report import MUTANTS_END as END

REPO = Path(__file__).resolve().parents[1]
LIST = Path(__file__).with_name("mutants.toml")
BACKUPS = REPO / ".mutants"
LOGS = REPO / ".mutants-logs"  # each mutant's pytest output, named in the report on an error
REPORT = REPO / "docs" / "reliability.md"


@dataclass(frozen=True)
class Mutant:
    name: str
    promise: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    timeout: float = 1800


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    verdict: str  # killed, survived, stale, error
    detail: str  # the failing tests, or why it is stale / an error
    seconds: float


def load(path: Path = LIST) -> list[Mutant]:
    entries = tomllib.loads(path.read_text())["mutant"]
    return [Mutant(**{**entry, "tests": tuple(entry["tests"])}) for entry in entries]


def restore_leftovers() -> list[str]:
    """Puts back any file a killed run left mutated; returns their paths."""
    restored = []
    for backup in sorted(BACKUPS.rglob("*")) if BACKUPS.exists() else []:
        if backup.is_file():
            target = REPO / backup.relative_to(BACKUPS)
            target.write_bytes(backup.read_bytes())
            backup.unlink()
            restored.append(str(target.relative_to(REPO)))
    return restored


def run_one(mutant: Mutant, python: str = sys.executable) -> Outcome:
    path = REPO / mutant.file
    original = path.read_bytes()
    found = original.decode().count(mutant.find)
    if found != 1:
        return Outcome(mutant, "stale", f"its edit matches {found} places in {mutant.file}", 0)
    backup = BACKUPS / mutant.file
    backup.parent.mkdir(parents=True, exist_ok=True)
    backup.write_bytes(original)
    path.write_text(original.decode().replace(mutant.find, mutant.replace))
    started = time.monotonic()
    try:
        # Tests on the host's node wait for it (one run on the node at a time).
        e2e = any(t.startswith("tests/e2e/") for t in mutant.tests)
        lock = ["flock", str(NODE_LOCK)] if e2e else []
        pytest = [python, "-m", "pytest", "-q", "-x", "-rfEs", "-p", "no:cacheprovider"]
        proc = subprocess.run(
            [*lock, *pytest, *mutant.tests],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=mutant.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Outcome(mutant, "error", f"tests still running after {mutant.timeout:.0f} s", 0)
    finally:
        path.write_bytes(original)
        backup.unlink()
    seconds = time.monotonic() - started
    LOGS.mkdir(exist_ok=True)
    log = LOGS / (re.sub(r"[^a-z0-9]+", "-", mutant.name.lower()).strip("-") + ".log")
    log.write_text(proc.stdout + proc.stderr)
    failed = re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", proc.stdout, re.MULTILINE)
    skipped = re.search(r"(\d+) skipped", proc.stdout)
    if proc.returncode == 0 and skipped:  # a skipped proof proves nothing
        return Outcome(mutant, "error", f"{skipped.group(1)} of its tests skipped", seconds)
    if proc.returncode == 0:
        return Outcome(mutant, "survived", "all passed", seconds)
    if proc.returncode == 1 and failed:
        return Outcome(mutant, "killed", ", ".join(f"`{t}`" for t in failed), seconds)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    where = log.relative_to(REPO)
    return Outcome(
        mutant, "error", f"pytest exited {proc.returncode} ({where}): {' / '.join(tail)}", seconds
    )


HEADER = "| promise | mutant (what it breaks) | verdict | killed by | s | run |"


def report(outcomes: list[Outcome], mutants: list[Mutant], previous: str = "") -> str:
    """The table of every mutant of the list: the ones run now, and for the others (a run with
    --only) their row of the previous report, with the time of the run that produced it."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows: dict[str, list[str]] = {}
    for line in previous.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1] in {m.name for m in mutants} and cells[5] != "run":
            rows[cells[1]] = cells
    for o in outcomes:
        rows[o.mutant.name] = [o.mutant.promise, o.mutant.name, o.verdict, o.detail,
                               f"{o.seconds:.0f}", when]  # fmt: skip
    killed = sum(rows[m.name][2] == "killed" for m in mutants if m.name in rows)
    lines = [
        f"`make mutants` (`reliability/mutants.toml`), last run {when}: {killed} of "
        f"{len(mutants)} mutants killed"
        + (f", {len(mutants) - len(rows)} not run" if len(rows) < len(mutants) else "")
        + ".",
        "",
        HEADER,
        "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(rows[m.name]) + " |" for m in mutants if m.name in rows]
    return "\n".join(lines)


def previous_report(path: Path = REPORT) -> str:
    doc = path.read_text() if path.exists() else ""
    return doc.split(BEGIN, 1)[1].split(END, 1)[0] if BEGIN in doc and END in doc else ""


def write_report(text: str, path: Path = REPORT) -> None:
    doc = path.read_text()
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip() + f"\n\n## Mutants\n\n{BEGIN}\n{text}\n{END}\n"
    path.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="a mutant's name (updates its row)",
    )
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--no-report", action="store_true", help="leave docs/ as it is")
    args = parser.parse_args(argv)
    mutants = load()
    if args.list:
        for m in mutants:
            print(f"{m.promise:10} {m.name}  ({m.file}; {' '.join(m.tests)})")
        return 0
    unknown = set(args.only) - {m.name for m in mutants}
    if unknown:
        parser.error(f"no mutant named {sorted(unknown)}")
    for path in restore_leftovers():
        print(f"mutants: put back {path}, left mutated by a killed run")
    chosen = [m for m in mutants if not args.only or m.name in args.only]
    outcomes = []
    for m in chosen:
        print(f"mutants: {m.promise}: {m.name} ...", flush=True)
        outcome = run_one(m)
        print(
            f"mutants:   {outcome.verdict} ({outcome.seconds:.0f} s) {outcome.detail}", flush=True
        )
        outcomes.append(outcome)
    text = report(outcomes, mutants, previous_report())
    print(text)
    if not args.no_report:
        write_report(text)
    return 0 if all(o.verdict == "killed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
