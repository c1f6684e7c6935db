"""What the soak (`bench/soak.py`) and the fuzzer (`bench/fuzz.py`) share: the suite they run
against, Restate's own tables, and the generated report `docs/reliability.md`.

Both write their figures into `docs/reliability.json` (one section each); the report is
rendered from that file, so either run refreshes its own part and keeps the other's.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for entry in (REPO / "tests", REPO):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from testkit.restate import ExampleService, RestateServer  # noqa: E402

DOCS = REPO / "docs"
RESULTS = DOCS / "reliability.json"
REPORT = DOCS / "reliability.md"


def log_time(record: dict[str, Any]) -> float:
    """The wall-clock time (epoch seconds) of a service's JSON log record."""
    return datetime.fromisoformat(str(record["time"])).timestamp()


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
    import os

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def save(section: str, result: dict[str, Any], path: Path = RESULTS) -> None:
    """Stores one harness's figures in the results file and re-renders the report."""
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data[section] = result
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    REPORT.write_text(render(data))


def _table(header: list[str], rows: Iterable[Iterable[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def render(data: dict[str, Any]) -> str:
    out = [
        "# Reliability under faults and hostile input",
        "",
        "Generated by `make soak` (`bench/soak.py`) and `make fuzz` (`bench/fuzz.py`) from",
        "`docs/reliability.json`; do not edit by hand. The pytest suite runs short versions of",
        "both with hard assertions (`tests/soak/`, `tests/fuzz/`).",
        "",
    ]
    if "soak" in data:
        out += _render_soak(data["soak"])
    if "fuzz" in data:
        out += _render_fuzz(data["fuzz"])
    return "\n".join(out) + "\n"


def _render_soak(s: dict[str, Any]) -> list[str]:
    f = s["faults"]
    out = [
        "## Soak with faults",
        "",
        f"Run of {s['finished']} on {s['machine']['cores']} cores ({s['machine']['cpu']}), "
        f"{s['seconds']:.0f} s, {s['concurrency']} concurrent clients, seed {s['seed']}. "
        "One real `restate-server` (single node, data on disk) and the four services as real "
        "processes on loopback, restarted whenever they die (as Kubernetes would). Every client "
        "request carries an idempotency key (or is a workflow, idempotent by key) and is sent "
        "again, unchanged, when the connection fails or Restate is down.",
        "",
        "### Faults injected",
        "",
    ]
    out += _table(
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
            [
                "SIGKILL of restate-server, restarted on the same data",
                len(f["server_kills"]),
                "",
            ],
            [
                "injected step failures (`raise` mode: Restate retries the step)",
                f["injected_failures"],
                "subscriptions, p=0.5 payment / 0.3 subscription, first part",
            ],
            ["service restarts (all causes)", f["restarts"], ""],
        ],
    )
    out += ["", "### Invocations", ""]
    rows = []
    for name, e in s["examples"].items():
        rows.append(
            [
                name,
                e["operations"],
                e["invocations"],
                e["lost"],
                e["duplicated_in_window"],
                e["duplicated_outside_window"],
                f"{e['p50_s']:.2f}",
                f"{e['p99_s']:.2f}",
            ]
        )
    t = s["totals"]
    rows.append(
        [
            "**total**",
            t["operations"],
            t["invocations"],
            t["lost"],
            t["duplicated_in_window"],
            t["duplicated_outside_window"],
            f"{t['p50_s']:.2f}",
            f"{t['p99_s']:.2f}",
        ]
    )
    out += _table(
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
        rows,
    )
    out += [
        "",
        "An operation is one client round trip: `add`; one `greet` or `ungreet`; a signup "
        "(`run`, read the email, `click` with the right or a wrong secret, `attach`); a "
        "building-blocks run (`run`, read the awakeable id, resolve it, `attach`). Invocations "
        "are the top-level ones the clients started (the building blocks' internal calls, "
        "messages and delayed `cancel` come on top). Completion time is from the first send to "
        "the verified result, retries and outages included.",
        "",
        "Checked from the effects, not from the answers: the stubs' `stub executed` log lines "
        "(one per real execution, with the invocation id and the arguments: payment id, "
        "subscription, user, awakeable id), the `count` state Restate stores for each greeter "
        "key, the workflows' outputs, and Restate's `sys_invocation` table.",
        "",
    ]
    c = s["checks"]
    out += _table(
        ["check", "result"],
        [
            ["invocations not completed at the end (`sys_invocation`)", c["not_completed"]],
            ["operations a client gave up on", c["client_gave_up"]],
            [
                "steps with no effect (a completed `add` missing its payment or a subscription)",
                c["missing_effects"],
            ],
            [
                "greeter keys whose stored count != greets - ungreets",
                f"{c['greeter_mismatches']} of {c['greeter_keys']} keys "
                f"({c['greets']} greets, {c['ungreets']} ungreets; lowest count "
                f"{c['greeter_min_count']})",
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
                "awakeables not resolved exactly once (one id per run, greeting returned)",
                c["awakeables_wrong"],
            ],
            [
                "`create_recurring_payment` executions with the same payment id",
                c["same_payment_id"],
            ],
        ],
    )
    out += [
        "",
        "Why clients had to send a request again (the same request, with its idempotency "
        "key), from the answers they got:",
        "",
    ]
    out += (
        _table(["reason", "count"], [[k, v] for k, v in s["client_retries"].items()])
        if s["client_retries"]
        else ["(none)"]
    )
    out += [
        "",
        "### Recovery after each restate-server SIGKILL",
        "",
    ]
    out += _table(
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
    w = s["window"]
    out += [
        "",
        "### The SIGKILL window: why some steps run twice",
        "",
        "A step (`ctx.run`) runs its code, then the SDK sends the result to Restate and waits "
        "for Restate's acknowledgement that the result is in the journal before the handler "
        "goes on. A process killed after the effect happened but before that acknowledgement "
        "arrived (or a `restate-server` killed before it stored the entry) leaves a journal "
        "without the step: the retry runs the step again, with the same arguments (the same "
        "`ctx.uuid()` payment id, the same awakeable id). That is at-least-once for the side "
        "effect itself, and the reason the example hands the payment provider an idempotency "
        "key. No other duplicate is allowed.",
        "",
        "A duplicate counts as inside the window when the process that executed the step was "
        f"killed less than {w['bound_s']:.0f} s after the first execution and before the "
        "second, and the invocation logged no later step in between (so no acknowledgement "
        "can have arrived); or when `restate-server` was killed in that span, or up to "
        f"{w['server_lead_s']:.0f} s before it (an attempt already running still finishes "
        "its step in the service, and the result has nowhere to go). Everything else is "
        "outside the window: a bug.",
        "",
    ]
    out += _table(
        ["cause of the kill", "duplicates", "gap effect -> kill (median / max, s)"],
        [
            [cause, d["count"], f"{d['gap_median_s']:.2f} / {d['gap_max_s']:.2f}"]
            for cause, d in sorted(w["by_cause"].items())
        ]
        or [["(none)", 0, "-"]],
    )
    if w["examples"]:
        out += ["", "Examples:", ""]
        out += [f"- {e}" for e in w["examples"]]
    if w["outside"]:
        out += ["", "Outside the window (bugs):", ""]
        out += [f"- {e}" for e in w["outside"]]
    out += [""]
    return out


def _render_fuzz(z: dict[str, Any]) -> list[str]:
    out = [
        "## Fuzzing every public endpoint",
        "",
        f"Run of {z['finished']}, {z['seconds']:.0f} s, schemathesis {z['schemathesis']} "
        f"(hypothesis {z['hypothesis']}), {z['examples_per_operation']} examples per "
        "operation and mode. The OpenAPI documents are the ones Restate's admin API serves for "
        "each registered service (`GET /services/<name>/openapi`); the requests go to the "
        "Restate ingress. The services' own routes (`/verify` of signup-workflow, "
        "`/awakeables` of building-blocks) are fuzzed on the services' ports.",
        "",
    ]
    rows = [
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
    ]
    out += _table(
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
        rows,
    )
    out += ["", "Answers by status and source:", ""]
    out += _table(
        ["status", "x-restate-error-source", "count", "example message"],
        [[r["status"], r["source"], r["count"], f"`{r['example']}`"[:160]] for r in z["answers"]],
    )
    out += ["", "### Raw malformed bodies", ""]
    out += _table(
        ["input", "handler", "status", "source", "message"],
        [
            [r["input"], r["handler"], r["status"], r["source"], f"`{r['message']}`"[:140]]
            for r in z["raw"]
        ],
    )
    a = z["after"]
    out += [
        "",
        "### Afterwards",
        "",
        f"- invocations not completed: {a['not_completed']} "
        f"({a['scheduled']} scheduled by a fuzzed `delay`, none retrying: "
        f"{a['retrying']} retrying)",
        f"- invocations attempted more than once: {a['retried']}",
        f"- services healthy: {a['healthy']}",
        f"- greeter state: {a['greeter_keys_checked']} fuzzed keys checked against the "
        f"requests that succeeded, {a['greeter_mismatches']} wrong; the documented requests "
        f"work: {a['documented_requests_ok']}",
        "",
    ]
    u = z["unreachable_deployment"]
    out += [
        "### 5xx of Restate's ingress itself",
        "",
        f"None in this run ({sum(c['5xx_ingress'] for c in z['targets'].values())}). The case "
        "of an unreachable deployment, tried on purpose (user-object's process killed, then a "
        f"`greet`): the client saw {u['during']}; Restate kept the invocation "
        f"`{u['restate_status']}` ({u['attempts']} attempts, last failure "
        f"`{u['last_failure']}`), and once the process was back the same request (same "
        f"idempotency key) answered `{u['after_restart']}`. So the 500 of an unreachable "
        "deployment is Restate's record of a failed attempt, which it retries; the client is "
        "not answered a 5xx for it. Under `make soak`, the 5xx clients do get come from the "
        "ingress while restate-server restarts (see the soak's retry reasons).",
        "",
        f"Requests answered from an earlier request with the same idempotency key (the body "
        f"not looked at, an empty key included): {z['deduplicated']}. One-way sends of a "
        f"schema-violating body checked for their invocation's 400: "
        f"{z['sent_invalid_checked']}. Operations with no schema-violating input at all "
        f"(only string path parameters): {len(z['no_negative_case'])}.",
        "",
        "### Findings, fixed",
        "",
        "- `GET /verify/<user>?secret=` of signup-workflow answered **500** for a secret "
        "outside ASCII (it went as is into an `idempotency-key` header) and **502** for a user "
        "id with `?`, `#` or `/` (not encoded in Restate's URL) and for a second click with "
        "another secret (Restate's 409 reported as if Restate were down). Now the user id and "
        "the key are percent-encoded, Restate's 4xx are passed on (409: the link was already "
        "used), 502 only when Restate is unreachable or does not serve `SignupWorkflow`; the "
        "email's link encodes the user id too. Test: `tests/services/test_email_link_input.py`.",
        "- `POST /invoke/<service>/<handler>` on a service port without a Restate protocol "
        "content type (or with a version the SDK does not speak) made the SDK raise out of "
        "the ASGI app: an empty **500** and two tracebacks in the log. Now the SDK's own status "
        "and message (415, naming the content type), one warning line; after the identity "
        "check (an unsigned request still gets 401). Paths that are not Restate's protocol "
        "get the operations app's 404 `Not Found` instead of the SDK's empty 404. Test: "
        "`tests/services/test_not_restate.py`.",
        "",
    ]
    if z["notes"]:
        out += [f"- {n}" for n in z["notes"]]
        out += [""]
    return out


if __name__ == "__main__":  # re-render the report from docs/reliability.json
    REPORT.write_text(render(json.loads(RESULTS.read_text())))
