"""docs/reliability.md, rendered from docs/reliability.json with the Markdown templates in
``reliability/templates/`` (``string.Template``): the prose lives there, the tables are built
here from the figures.

    .venv/bin/python -m reliability.report     # re-render the report from the results file
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from string import Template
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = Path(__file__).resolve().parent / "templates"
DOCS = REPO / "docs"
RESULTS = DOCS / "reliability.json"
REPORT = DOCS / "reliability.md"


def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text())


def table(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _bullets(title: str, items: list[str]) -> str:
    return f"\n\n{title}\n\n" + "\n".join(f"- {e}" for e in items) if items else ""


def render(data: dict[str, Any]) -> str:
    sections = []
    if "soak" in data:
        sections.append(render_soak(data["soak"]))
    if "fuzz" in data:
        sections.append(render_fuzz(data["fuzz"]))
    return _template("report.md").substitute(sections="\n".join(sections)).rstrip("\n") + "\n"


def render_soak(s: dict[str, Any]) -> str:
    f, t, c, w = s["faults"], s["totals"], s["checks"], s["window"]
    faults = table(
        ["fault", "count", "detail"],
        [
            [
                "SIGKILL of a service process",
                f["service_sigkills"],
                ", ".join(f"{k} {v}" for k, v in sorted(f["service_sigkills_by"].items())),
            ],
            [
                "crash (`FAILURE_MODE=crash`: the stub SIGKILLs its own process)",
                f["crashes"],
                f"subscriptions in crash mode for the second part, p={f['crash_probability']} "
                "a step",
            ],
            [
                "SIGTERM of a service mid-load (graceful path)",
                len(f["sigterms"]),
                "; ".join(
                    f"{t['service']}: exit {t['exit_code']} after {t['drain_s']:.1f} s"
                    f"{', stopped line logged' if t['stopped_logged'] else ''}"
                    for t in f["sigterms"]
                ),
            ],
            ["SIGKILL of restate-server, restarted on the same data", len(f["server_kills"]), ""],
            [
                "injected step failures (`raise` mode: Restate retries the step)",
                f["injected_failures"],
                "subscriptions, first part: "
                + (
                    ", ".join(f"p={p} {step}" for step, p in f["raise_probabilities"].items())
                    if "raise_probabilities" in f
                    else "probabilities not recorded by this run"
                ),
            ],
            ["service restarts (all causes)", f["restarts"], ""],
        ],
    )
    counted = ("operations", "invocations", "lost", "duplicated_in_window")
    invocations = table(
        [
            "example",
            "client operations",
            "invocations",
            "lost",
            "duplicated (SIGKILL window)",
            "duplicated (outside)",
            "p50 completion (s)",
            "p99 completion (s)",
        ],
        [
            [
                name,
                *(e[k] for k in counted),
                e["duplicated_outside_window"],
                f"{e['p50_s']:.2f}",
                f"{e['p99_s']:.2f}",
            ]
            for name, e in [*s["examples"].items(), ("**total**", t)]
        ],
    )
    checks = table(["check", "result"], _soak_checks(c))
    recovery = table(
        [
            "kill at (s into the run)",
            "in flight",
            "healthy after restart (s)",
            "first new invocation done (s after kill)",
            "all in-flight operations done (s after kill)",
        ],
        [
            [
                f"{k['at_s']:.1f}",
                k["in_flight"],
                f"{k['healthy_s']:.1f}",
                f"{k['first_invocation_s']:.1f}",
                f"{k['in_flight_done_s']:.1f}",
            ]
            for k in f["server_kills"]
        ],
    )
    window = table(
        ["cause of the death", "duplicates in the window", "gap effect -> death (median / max, s)"],
        [
            [cause, d["count"], f"{d['gap_median_s']:.2f} / {d['gap_max_s']:.2f}"]
            for cause, d in sorted(w["by_cause"].items())
        ]
        or [["(none)", 0, "-"]],
    )
    if "duplicates" in w:
        every = (
            "\n\n"
            + table(
                [
                    "step (arguments)",
                    "invocation",
                    "first execution: pid, attempt",
                    "again (s), attempt",
                    "death of that process",
                    "Restate's journal",
                    "Restate's retry count",
                    "verdict",
                ],
                [
                    [
                        f"`{d['step']}`({d['args']})",
                        f"`{d['invocation']}`",
                        f"{d['pid']}, {d['attempts'][0]}",
                        f"{d['again_s']:.2f}, {d['attempts'][1]}",
                        d["death"] or "none: " + "; ".join(d.get("deaths_within_30_s", [])),
                        d["journal"],
                        d["retry_count"],
                        "in the window" if d["in_window"] else "**outside: a bug**",
                    ]
                    for d in w["duplicates"]
                ],
            )
            if w["duplicates"]
            else "\n\nNo step ran twice."
        )
    else:
        every = _bullets(
            "Examples (this run did not record the journal's evidence):", w["examples"]
        )
        every += _bullets("Outside the window (bugs):", w["outside"])
    retries = s["client_retries"]
    return _template("soak.md").substitute(
        finished=s["finished"],
        cores=s["machine"]["cores"],
        cpu=s["machine"]["cpu"],
        seconds=f"{s['seconds']:.0f}",
        concurrency=s["concurrency"],
        seed=s["seed"],
        faults=faults,
        invocations=invocations,
        checks=checks,
        client_retries=(
            table(["reason", "count"], [[k, v] for k, v in retries.items()])
            if retries
            else "(none)"
        ),
        recovery=recovery,
        bound_s=f"{w['bound_s']:.0f}",
        server_lead_s=f"{w['server_lead_s']:.0f}",
        window=window,
        in_window=(
            t["duplicated_in_window"]
            if "duplicates" in w
            else f"{t['duplicated_in_window']} (judged by that run's rule, without the journal)"
        ),
        outside_window=t["duplicated_outside_window"],
        without_evidence=w.get("death_without_journal_evidence", "not recorded"),
        duplicates=every,
        verdict=(
            "not recorded by this run"
            if "failures" not in s
            else "passed (exit code 0)"
            if not s["failures"]
            else "failed (exit code 1): " + ", ".join(s["failures"])
        ),
    )


def _soak_checks(c: dict[str, Any]) -> list[list[object]]:
    """The soak's checks of the effects, each with its figure (or that the run lacked it)."""

    def figure(key: str, text: str = "{}") -> str:
        return text.format(c[key]) if key in c else "not recorded by this run"

    obj = c.get("subscription_object")
    return [
        ["invocations not completed at the end (`sys_invocation`)", c["not_completed"]],
        ["operations a client gave up on", c["client_gave_up"]],
        [
            "steps with no effect (a completed `add` missing its payment or a subscription)",
            c["missing_effects"],
        ],
        [
            "greeter keys whose stored count != greets - ungreets",
            f"{c['greeter_mismatches']} of {c['greeter_keys']} keys "
            f"({c['greets']} greets, {c['ungreets']} ungreets)",
        ],
        [
            "greeter keys whose answers are not one walk from 0 to the stored count (a lost "
            "or doubled greeting; the two do not cancel out)",
            figure("greeter_sequences_wrong")
            + (
                f" of {c['greeter_sequences_checked']} keys"
                if "greeter_sequences_wrong" in c
                else ""
            ),
        ],
        [
            "workflows run more than once (`run` invocations or stub effects per user)",
            c["workflows_run_twice"],
        ],
        [
            "workflow outputs wrong (right secret -> true, wrong -> false)",
            c["workflow_wrong_outputs"],
        ],
        [
            "awakeables not resolved exactly once (one id per run, greeting returned, charged)",
            c["awakeables_wrong"],
        ],
        [
            "one-way `create` and delayed `cancel` messages: the object's counters against the "
            "building blocks' runs",
            (
                f"created {obj['created']} (expected {obj['expected_created']}), cancelled "
                f"{obj['cancelled']} (expected {obj['expected_cancelled']})"
                if obj
                else "not recorded by this run"
            ),
        ],
        [
            "`create_recurring_payment` executed again (the payment id must stay the same)",
            c["same_payment_id"],
        ],
    ]


# The fuzz results' fields that the template shows as they are.
AFTER_FIELDS = ("not_completed", "scheduled", "retrying", "retried", "healthy",
                "greeter_keys_checked", "greeter_mismatches", "documented_requests_ok")  # fmt: skip
UNREACHABLE_FIELDS = ("during", "restate_status", "attempts", "last_failure", "after_restart")


def _fields(values: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The named values, for a template's substitute (a missing one is a KeyError)."""
    return {name: values[name] for name in names}


def render_fuzz(z: dict[str, Any]) -> str:
    targets = table(
        [
            "target",
            "cases",
            "2xx",
            "4xx",
            "4xx not naming the problem",
            "5xx from a service",
            "5xx from Restate's ingress",
            "schema-violating accepted",
        ],
        [
            [
                name,
                c["cases"],
                c["2xx"],
                c["4xx"],
                c["4xx_without_message"],
                c["5xx_service"],
                c["5xx_ingress"],
                c["negative_accepted"],
            ]
            for name, c in z["targets"].items()
        ],
    )
    answers = table(
        ["status", "x-restate-error-source", "count", "example message"],
        [[r["status"], r["source"], r["count"], f"`{r['example']}`"[:160]] for r in z["answers"]],
    )
    raw = table(
        ["input", "handler", "status", "source", "message"],
        [
            [r["input"], r["handler"], r["status"], r["source"], f"`{r['message']}`"[:140]]
            for r in z["raw"]
        ],
    )
    a, u = z["after"], z["unreachable_deployment"]
    notes = z["notes"]
    return _template("fuzz.md").substitute(
        finished=z["finished"],
        seconds=f"{z['seconds']:.0f}",
        schemathesis=z["schemathesis"],
        hypothesis=z["hypothesis"],
        examples_per_operation=z["examples_per_operation"],
        targets=targets,
        answers=answers,
        raw=raw,
        **_fields(a, AFTER_FIELDS),
        **_fields(u, UNREACHABLE_FIELDS),
        **_fields(z, ("deduplicated", "sent_invalid_checked")),
        ingress_5xx=sum(c["5xx_ingress"] for c in z["targets"].values()),
        no_negative_case=len(z["no_negative_case"]),
        notes="\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else "",
    )


# `make mutants` (reliability/mutants.py) writes its own section between these markers; a soak
# or fuzz run renders the rest of the file and keeps that section as it is.
MUTANTS_BEGIN, MUTANTS_END = "<!-- mutants:begin -->", "<!-- mutants:end -->"


def write(data: dict[str, Any], path: Path = REPORT) -> None:
    text = render(data)
    old = path.read_text() if path.exists() else ""
    if MUTANTS_BEGIN in old and MUTANTS_END in old:
        block = old[old.index(MUTANTS_BEGIN) : old.index(MUTANTS_END) + len(MUTANTS_END)]
        text = text.rstrip("\n") + f"\n\n## Mutants\n\n{block}\n"
    path.write_text(text)


if __name__ == "__main__":
    write(json.loads(RESULTS.read_text()))
