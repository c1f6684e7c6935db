"""Soak with faults: thousands of invocations of the four examples while processes die.

    .venv/bin/python -m reliability.soak         # make soak: >= 2,000 operations, writes
                                                 # docs/reliability.json and docs/reliability.md
    .venv/bin/python -m reliability.soak --short # a few hundred, one server kill (the pytest)

One real `restate-server` and the four example services on loopback. Clients send a mix of
the four examples; meanwhile the harness SIGKILLs service processes at random moments (a
supervisor restarts them), switches `subscriptions` to `FAILURE_MODE=crash` (its stubs then
SIGKILL their own process), SIGTERMs services mid-load and SIGKILLs `restate-server`
(restarted on the same data). Then it checks what happened from the effects: the stubs' log
lines, Restate's stored state and `sys_invocation`, the workflows' outputs.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import catalog
import httpx

from reliability import common
from testkit.processes import wait_until
from testkit.restate import (
    ExampleService,
    RestateServer,
    install_restate,
)

SUBSCRIPTIONS = ["Netflix", "Disney+", "HBO Max", "Prime Video", "Apple TV+"]
HOT_KEYS = ["hot-0", "hot-1", "hot-2"]
CRASH_PROBABILITY = 0.04
WINDOW_BOUND_S = 10.0
# A service cannot log after its death, but log times are truncated to the millisecond.
LOG_RESOLUTION_S = 0.005
# restate-server can die first: an attempt already running finishes its step in the service,
# whose result then has nowhere to go. (The service notices the closed stream within ~1 s.)
SERVER_LEAD_S = 2.0
EXAMPLE_OF_STEP = {
    "create_recurring_payment": "subscriptions",
    "create_subscription": "subscriptions",
    "announce_awakeable": "building-blocks",
    "charge_bank_account": "building-blocks",
    "create_user_entry": "signup-workflow",
    "send_email_with_link": "signup-workflow",
}


@dataclass(frozen=True)
class SoakConfig:
    operations: int = 4000  # client round trips; a signup is two invocations (run, click)
    concurrency: int = 16
    service_kills: int = 16
    sigterm: bool = True
    crash_phase: bool = True
    seed: int = 12
    operation_deadline_s: float = 180.0
    max_seconds: float = 1200.0  # the whole load; operations not started by then are skipped
    # Fractions of the operations done at which the scheduled faults fire.
    server_kill_at: tuple[float, ...] = (0.25, 0.55, 0.8)
    sigterm_at: float = 0.5
    crash_phase_at: float = 0.45
    mix: tuple[tuple[str, float], ...] = (
        ("subscriptions", 0.3),
        ("user-object", 0.45),
        ("signup-workflow", 0.13),
        ("building-blocks", 0.12),
    )


SHORT = SoakConfig(
    operations=400,
    concurrency=12,
    service_kills=3,
    server_kill_at=(0.45,),
    sigterm_at=0.6,
    crash_phase_at=0.3,
    operation_deadline_s=120.0,
    max_seconds=150.0,
)


class GaveUp(Exception):
    """A client operation did not complete before its deadline: lost, from the client's side."""


@dataclass
class Op:
    n: int
    example: str
    started: float = 0.0
    finished: float = 0.0
    ok: bool = False
    error: str = ""
    invocations: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


class Soak:
    def __init__(self, config: SoakConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.rng = random.Random(config.seed)
        self.server = RestateServer(install_restate(), workdir)
        common = {
            "BUILDING_BLOCKS_SLEEP_SECONDS": "0.2",
            "BUILDING_BLOCKS_CANCEL_DELAY_SECONDS": "1",
            "SHUTDOWN_GRACE_SECONDS": "5",
        }
        self.services = {
            name: ExampleService(
                name, workdir, {"RESTATE_INGRESS_URL": self.server.ingress_url, **common}
            )
            for name in catalog.BY_NAME
        }
        self.lock = threading.Lock()
        self.client_retries: Counter[str] = Counter()  # why a client had to send again
        self.ops: list[Op] = []
        self.done = 0
        self.t0 = 0.0
        self.stop = threading.Event()
        # Greeter bookkeeping: an ungreet is only sent when enough greets of its key have
        # completed that it can never find the count at 0, so count == greets - ungreets.
        self.greets: Counter[str] = Counter()
        self.greets_done: Counter[str] = Counter()
        self.ungreets: Counter[str] = Counter()
        # Per key, the count each answer reports after its invocation: greets' "N-th time",
        # ungreets' "taking one greeting back: N".
        self.greet_counts: dict[str, list[int]] = defaultdict(list)
        self.ungreet_counts: dict[str, list[int]] = defaultdict(list)
        self.cold_keys = [f"cold-{i}" for i in range(max(50, config.operations // 6))]
        # Faults, with wall-clock times (compared with the services' log timestamps).
        self.kills: list[dict[str, Any]] = []  # service SIGKILLs by the harness
        self.server_kills: list[dict[str, Any]] = []
        self.sigterms: list[dict[str, Any]] = []
        self.server_down = threading.Event()
        self.stub_waiters = threading.Condition()
        self._stub_index: dict[tuple[str, str], dict[str, Any]] = {}

    # --- processes -------------------------------------------------------------------------

    def start(self) -> None:
        self.server.start()
        for service in self.services.values():
            service.start()
            self.server.register(service.url, force=True)
            service.supervise()

    def close(self) -> None:
        self.stop.set()
        for service in self.services.values():
            service.stop()
        self.server.stop()

    # --- the services' logs: what the stubs really did -------------------------------------

    def _on_stub(self, service: str, record: dict[str, Any]) -> None:
        """Indexes `stub executed` lines by (step, first argument), for the waiting clients."""
        args = record.get("stub_args") or [""]
        with self.stub_waiters:
            self._stub_index.setdefault((record["step"], str(args[0])), record)
            self.stub_waiters.notify_all()

    def wait_stub(self, step: str, first_arg: str, deadline: float) -> dict[str, Any]:
        with self.stub_waiters:
            while (record := self._stub_index.get((step, first_arg))) is None:
                if time.monotonic() > deadline:
                    raise GaveUp(f"no {step} for {first_arg}")
                self.stub_waiters.wait(1)
            return record

    # --- clients ------------------------------------------------------------------------------

    def request(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        deadline: float,
        ok: Callable[[httpx.Response], bool],
        ok_when_sent_again: Callable[[httpx.Response], bool] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Sends the same request until `ok` accepts the answer: through connection failures,
        Restate's outage and restart (5xx), never changing it (the idempotency key stays).
        `ok_when_sent_again` accepts an answer too, but only to a request sent more than once
        (an earlier one may have reached Restate, its answer lost)."""
        delay = 0.05
        last = ""
        for sent in itertools.count(1):
            try:
                answer = client.request(method, path, **kwargs)
                if ok(answer) or (
                    sent > 1 and ok_when_sent_again is not None and ok_when_sent_again(answer)
                ):
                    return answer
                last = f"{answer.status_code} {answer.text[:200]}"
                if answer.status_code < 500:
                    raise GaveUp(f"{method} {path}: unexpected answer {last}")
                reason = (
                    f"{answer.status_code} from the ingress: "
                    f"{answer.text[:70] or answer.reason_phrase}"
                )
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
                reason = f"{type(error).__name__} (restate-server down or restarting)"
            with self.lock:
                self.client_retries[reason] += 1
            if time.monotonic() > deadline:
                raise GaveUp(f"{method} {path}: {last}")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def run_op(self, op: Op, client: httpx.Client) -> None:
        op.started = time.time()
        deadline = time.monotonic() + self.config.operation_deadline_s
        try:
            getattr(self, "_" + op.example.replace("-", "_"))(op, client, deadline)
            op.ok = True
        except GaveUp as error:
            op.error = str(error)
        except Exception as error:  # a bug of the harness or an unexpected answer
            op.error = f"{type(error).__name__}: {error}"
        op.finished = time.time()
        with self.lock:
            self.done += 1

    def _subscriptions(self, op: Op, client: httpx.Client, deadline: float) -> None:
        subs = self.rng.sample(SUBSCRIPTIONS, self.rng.randint(1, 3))
        body = {"userId": f"user-{op.n}", "creditCard": f"4000-{op.n:04d}", "subscriptions": subs}
        op.detail = {"subscriptions": subs}
        answer = self.request(
            client,
            "POST",
            "/SubscriptionService/add",
            deadline,
            lambda r: r.status_code == 200,
            json=body,
            headers={"idempotency-key": f"add-{op.n}"},
        )
        op.invocations.append(answer.headers["x-restate-id"])

    def _user_object(self, op: Op, client: httpx.Client, deadline: float) -> None:
        key = (
            self.rng.choice(HOT_KEYS)
            if self.rng.random() < 0.5
            else self.rng.choice(self.cold_keys)
        )
        with self.lock:
            ungreet = self.rng.random() < 0.35 and self.greets_done[key] - self.ungreets[key] > 0
            if ungreet:
                self.ungreets[key] += 1
            else:
                self.greets[key] += 1
        op.detail = {"key": key, "handler": "ungreet" if ungreet else "greet"}
        if ungreet:
            answer = self.request(
                client,
                "POST",
                f"/GreeterObject/{key}/ungreet",
                deadline,
                lambda r: r.status_code == 200,
                headers={"idempotency-key": f"ungreet-{op.n}"},
            )
            with self.lock:
                self.ungreet_counts[key].append(int(answer.json().rsplit(": ", 1)[1].rstrip(".")))
        else:
            answer = self.request(
                client,
                "POST",
                f"/GreeterObject/{key}/greet",
                deadline,
                lambda r: r.status_code == 200,
                json="Hi",
                headers={"idempotency-key": f"greet-{op.n}"},
            )
            with self.lock:
                self.greets_done[key] += 1
                self.greet_counts[key].append(_nth(answer.json()))
        op.invocations.append(answer.headers["x-restate-id"])

    def _signup_workflow(self, op: Op, client: httpx.Client, deadline: float) -> None:
        user = f"signup-{op.n}"
        right = self.rng.random() < 0.8
        op.detail = {"user": user, "right_secret": right}
        sent = self.request(
            client,
            "POST",
            f"/SignupWorkflow/{user}/run/send",
            deadline,
            lambda r: r.status_code in (200, 202),
            json={"name": f"User {op.n}", "email": f"{user}@example.com"},
        )
        op.invocations.append(sent.json()["invocationId"])
        email = self.wait_stub("send_email_with_link", user, deadline)
        secret = email["stub_args"][2] if right else f"wrong-{op.n}"
        clicked = self.request(
            client,
            "POST",
            f"/SignupWorkflow/{user}/click",
            deadline,
            lambda r: r.status_code == 200,
            # A click whose answer was lost and is sent again finds the promise resolved; on
            # the first try a 409 is a failure.
            ok_when_sent_again=lambda r: r.status_code == 409,
            json=secret,
        )
        if "x-restate-id" in clicked.headers:
            op.invocations.append(clicked.headers["x-restate-id"])
        result = self.request(
            client,
            "GET",
            f"/restate/workflow/SignupWorkflow/{user}/attach",
            deadline,
            lambda r: r.status_code == 200,
        )
        op.detail["output"] = result.json()

    def _building_blocks(self, op: Op, client: httpx.Client, deadline: float) -> None:
        sent = self.request(
            client,
            "POST",
            "/MyService/run/send",
            deadline,
            lambda r: r.status_code in (200, 202),
            headers={"idempotency-key": f"blocks-{op.n}"},
        )
        invocation = sent.json()["invocationId"]
        op.invocations.append(invocation)
        announced = self.wait_stub("announce_awakeable", invocation, deadline)
        awakeable = announced["stub_args"][1]
        greeting = f"hello-{op.n}"
        op.detail = {"awakeable": awakeable, "greeting": greeting}
        self.request(
            client,
            "POST",
            f"/restate/awakeables/{awakeable}/resolve",
            deadline,
            lambda r: r.is_success,
            json=greeting,
        )
        result = self.request(
            client,
            "GET",
            f"/restate/invocation/{invocation}/attach",
            deadline,
            lambda r: r.status_code == 200,
        )
        op.detail["output"] = result.json()

    # --- faults -------------------------------------------------------------------------------

    def progress(self) -> float:
        with self.lock:
            return self.done / max(1, self.config.operations)

    def _inject_faults(self) -> None:
        config = self.config
        plan: list[tuple[float, str]] = [(p, "server") for p in config.server_kill_at]
        plan += [(self.rng.uniform(0.05, 0.95), "service") for _ in range(config.service_kills)]
        if config.crash_phase:
            plan.append((config.crash_phase_at, "crash-phase"))
        if config.sigterm:
            plan.append((config.sigterm_at, "sigterm"))
        plan.sort()
        for at, fault in plan:
            while self.progress() < at:
                if self.stop.wait(0.05):
                    return
            time.sleep(self.rng.uniform(0, 0.5))  # a random moment, not an operation boundary
            if fault == "server":
                self._kill_server()
            elif fault == "service":
                name = self.rng.choice(sorted(self.services))
                service = self.services[name]
                self._wait_ready(service)
                self.kills.append(
                    {"service": name, "time": time.time(), "pid": service.process.pid}
                )
                service.process.signal(signal.SIGKILL)
            elif fault == "crash-phase":
                self._sigterm(
                    "subscriptions",
                    {
                        "FAILURE_MODE": "crash",
                        "FAILURE_PROBABILITIES": json.dumps(
                            {
                                "create_recurring_payment": CRASH_PROBABILITY,
                                "create_subscription": CRASH_PROBABILITY,
                            }
                        ),
                    },
                )
            elif fault == "sigterm":
                self._sigterm("user-object", {})

    @staticmethod
    def _wait_ready(service: ExampleService) -> None:
        """Until the (restarted) process serves: a crash-mode process may die again meanwhile."""

        def ready() -> bool:
            try:
                return service.ready()
            except RuntimeError:  # exited; the supervisor restarts it
                return False

        wait_until(ready, 60, f"{service.name} to be ready")

    def _sigterm(self, name: str, env: dict[str, str]) -> None:
        service = self.services[name]
        self._wait_ready(service)  # SIGTERM before the handlers are installed just terminates
        exits = len(service.exits)
        service.process.env.update(env)  # the supervisor restarts it with these
        sent = time.time()
        pid = service.process.pid
        service.process.signal(signal.SIGTERM)
        wait_until(lambda: len(service.exits) > exits, 30, f"{name} to exit after SIGTERM")
        exited, code = service.exits[exits]
        self.sigterms.append(
            {
                "service": name,
                "pid": pid,
                "time": sent,
                "exited": exited,
                "exit_code": code,
                "drain_s": exited - sent,
                "switched_to": env.get("FAILURE_MODE", ""),
            }
        )

    def _kill_server(self) -> None:
        killed = time.time()
        in_flight = self._in_flight(killed)
        self.server_down.set()
        self.server.kill()  # SIGKILL
        self.server.process.start()  # same base dir: same data
        wait_until(self.server.healthy, 120, "restate-server to restart")
        healthy = time.time()
        self.server_down.clear()
        probe = httpx.Client(base_url=self.server.ingress_url, timeout=30)
        self.request(
            probe,
            "POST",
            f"/GreeterObject/probe-{len(self.server_kills)}/greet",
            time.monotonic() + 120,
            lambda r: r.status_code == 200,
            json="Hi",
            headers={"idempotency-key": f"probe-{len(self.server_kills)}"},
        )
        probe.close()
        self.server_kills.append(
            {
                "time": killed,
                "at_s": killed - self.t0,
                "in_flight_ops": in_flight,
                "in_flight": len(in_flight),
                "healthy_s": healthy - killed,
                "first_invocation_s": time.time() - killed,
            }
        )

    def _in_flight(self, at: float) -> list[int]:
        with self.lock:
            return [op.n for op in self.ops if op.started and op.started <= at and not op.finished]

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.t0 = time.time()
        follower = common.StubFollower(self.services.values(), self._on_stub).__enter__()
        injector = threading.Thread(target=self._inject_faults, daemon=True)
        injector.start()
        names, weights = zip(*self.config.mix, strict=True)
        examples = self.rng.choices(names, weights, k=self.config.operations)
        self.ops = [Op(n, example) for n, example in enumerate(examples)]
        started = time.monotonic()
        local = threading.local()

        def work(op: Op) -> None:
            if time.monotonic() - started > self.config.max_seconds:
                op.error = "not started: time bound of the run reached"
                with self.lock:
                    self.done += 1
                return
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=self.server.ingress_url, timeout=60)
            self.run_op(op, local.client)

        with ThreadPoolExecutor(self.config.concurrency) as pool:
            list(pool.map(work, self.ops))
        load_seconds = time.time() - self.t0
        injector.join(180)
        self.stop.set()
        follower.__exit__()
        for kill in self.server_kills:
            ops = [self.ops[n] for n in kill.pop("in_flight_ops")]
            kill["in_flight_done_s"] = max(
                [op.finished - kill["time"] for op in ops] or [kill["first_invocation_s"]]
            )
        self._settle()
        return self.analyse(load_seconds)

    def _settle(self, timeout: float = 60) -> None:
        """Waits for what the clients do not wait for (the delayed `cancel` messages)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and common.not_completed(self.server):
            time.sleep(1)

    # --- the checks ----------------------------------------------------------------------------

    def analyse(self, load_seconds: float) -> dict[str, Any]:
        records = {name: s.records() for name, s in self.services.items()}
        executions = [
            (name, r) for name, rs in records.items() for r in rs if r["message"] == "stub executed"
        ]
        crashes = [
            (name, common.log_time(r), r.get("pid"))
            for name, rs in records.items()
            for r in rs
            if r["message"] == "injected failure: crashing the process"
        ]
        injected = sum(
            1 for rs in records.values() for r in rs if r["message"] == "injected failure"
        )
        for term in self.sigterms:
            term["stopped_logged"] = any(
                r["message"] == "stopped" and term["time"] <= common.log_time(r)
                for r in records[term["service"]]
            )
        # Deaths: (time, service, why, pid of the process that died; None: restate-server).
        deaths: list[tuple[float, str, str, int | None]] = [
            (k["time"], k["service"], "service SIGKILL (harness)", k["pid"]) for k in self.kills
        ]
        deaths += [
            (t, name, "crash mode (stub SIGKILLs its process)", pid) for name, t, pid in crashes
        ]
        deaths += [
            (t["exited"], t["service"], "SIGTERM (grace period ended)", t["pid"])
            for t in self.sigterms
        ]
        deaths += [(k["time"], "*", "restate-server SIGKILL", None) for k in self.server_kills]
        # Restate's count of attempts of the invocations it tried again, printed beside each
        # duplicate. Not required: a completed invocation's row reads 1 (seen for duplicates
        # whose process crashed at the same millisecond as the step's log line).
        retries = {str(r["id"]): int(r["retry_count"]) for r in common.retried(self.server)}

        # Effects: (invocation, step, what distinguishes repeated steps of one invocation).
        effects: dict[tuple[str, str, str], list[tuple[float, str, dict[str, Any]]]] = defaultdict(
            list
        )
        for name, r in executions:
            args = r["stub_args"]
            part = args[1] if r["step"] == "create_subscription" else ""
            effects[(r["invocation_id"], r["step"], part)].append((common.log_time(r), name, r))
        progress: dict[str, list[float]] = defaultdict(list)
        for _, r in executions:
            progress[r["invocation_id"]].append(common.log_time(r))

        # Restate's journals of the invocations with a step executed more than once.
        journal_of = common.journals(
            self.server,
            {invocation for (invocation, _, _), runs in effects.items() if len(runs) > 1},
        )
        server_kills = [k["time"] for k in self.server_kills]
        by_cause: dict[str, list[float]] = defaultdict(list)
        duplicates: list[dict[str, Any]] = []  # every duplicate, with its verdict and evidence
        dup_per_example: Counter[str] = Counter()
        outside_per_example: Counter[str] = Counter()
        for (invocation, step, _part), runs in effects.items():
            runs.sort(key=lambda run: run[0])
            for (t1, service, first), (t2, _, second) in itertools.pairwise(runs):
                later = [t for t in progress[invocation] if t1 < t < t2]
                # A death that can explain it: the very process that ran the first execution
                # (its pid) died after it and before the invocation made any further progress,
                # or restate-server died meanwhile.
                cause = next(
                    (
                        (d, why)
                        for d, who, why, pid in sorted(deaths, key=lambda death: death[0])
                        if (who == "*" or (who == service and pid == first.get("pid")))
                        and t1 - (SERVER_LEAD_S if who == "*" else LOG_RESOLUTION_S) <= d <= t2
                        and d - t1 <= WINDOW_BOUND_S
                        and not any(t < d for t in later)
                    ),
                    None,
                )
                # And Restate's own record that the first execution was never acknowledged.
                unacknowledged, evidence = journal_evidence(
                    (t1, first), (t2, second), runs[-1][2], journal_of.get(invocation), server_kills
                )
                example = EXAMPLE_OF_STEP[step]
                duplicate = {
                    "step": step,
                    "args": ", ".join(str(a) for a in first["stub_args"])[:90],
                    "invocation": invocation,
                    "pid": first.get("pid"),
                    "attempts": [first.get("attempt"), second.get("attempt")],
                    "again_s": t2 - t1,
                    "retry_count": retries.get(invocation, 1),
                    "death": f"{cause[1]} {cause[0] - t1:+.2f} s" if cause else "",
                    "journal": evidence,
                    "in_window": cause is not None and unacknowledged,
                }
                if duplicate["in_window"]:
                    assert cause is not None
                    dup_per_example[example] += 1
                    by_cause[cause[1]].append(cause[0] - t1)
                else:
                    outside_per_example[example] += 1
                    duplicate["deaths_within_30_s"] = [
                        f"{why} of {who} (pid {pid}) at {d - t1:+.2f} s"
                        for d, who, why, pid in sorted(deaths, key=lambda death: death[0])
                        if who in (service, "*") and abs(d - t1) < 30
                    ]
                duplicates.append(duplicate)

        checks, lost = self._check_effects(effects)
        examples: dict[str, dict[str, Any]] = {}
        for name, _ in self.config.mix:
            ops = [op for op in self.ops if op.example == name]
            times = [op.finished - op.started for op in ops if op.ok]
            examples[name] = {
                "operations": len(ops),
                "invocations": sum(len(op.invocations) for op in ops),
                "lost": lost[name],
                "duplicated_in_window": dup_per_example[name],
                "duplicated_outside_window": outside_per_example[name],
                "p50_s": common.percentile(times, 50),
                "p99_s": common.percentile(times, 99),
            }
        all_times = [op.finished - op.started for op in self.ops if op.ok]
        totals = {
            "operations": len(self.ops),
            "invocations": sum(e["invocations"] for e in examples.values()),
            "lost": sum(lost.values()),
            "duplicated_in_window": sum(dup_per_example.values()),
            "duplicated_outside_window": sum(outside_per_example.values()),
            "p50_s": common.percentile(all_times, 50),
            "p99_s": common.percentile(all_times, 99),
        }
        kills_by = Counter(k["service"] for k in self.kills)
        return {
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": common.machine(),
            "config": asdict(self.config),
            "seed": self.config.seed,
            "concurrency": self.config.concurrency,
            "seconds": load_seconds,
            "faults": {
                "service_sigkills": len(self.kills),
                "service_sigkills_by": dict(kills_by),
                "crashes": len(crashes),
                "crash_probability": CRASH_PROBABILITY,
                # The stubs' own probabilities in `raise` mode (the first part of the run).
                "raise_probabilities": _raise_probabilities(),
                "sigterms": [
                    {k: v for k, v in t.items() if k not in ("time", "exited")}
                    for t in self.sigterms
                ],
                "server_kills": [
                    {k: v for k, v in kill.items() if k != "time"} for kill in self.server_kills
                ],
                "injected_failures": injected,
                "restarts": sum(s.restarts for s in self.services.values()),
            },
            "examples": examples,
            "totals": totals,
            "client_retries": dict(self.client_retries.most_common(12)),
            "checks": checks,
            "window": {
                "bound_s": WINDOW_BOUND_S,
                "server_lead_s": SERVER_LEAD_S,
                "by_cause": {
                    cause: {
                        "count": len(gaps),
                        "gap_median_s": common.percentile(gaps, 50),
                        "gap_max_s": max(gaps),
                    }
                    for cause, gaps in by_cause.items()
                },
                # A death explained it but Restate's journal does not show the first execution
                # unacknowledged (counted outside).
                "death_without_journal_evidence": sum(
                    1 for d in duplicates if d["death"] and not d["in_window"]
                ),
                "duplicates": duplicates,
            },
            "errors": [f"op {op.n} ({op.example}): {op.error}" for op in self.ops if op.error][:20],
        }

    def _check_effects(
        self, effects: dict[tuple[str, str, str], list[Any]]
    ) -> tuple[dict[str, Any], Counter[str]]:
        lost: Counter[str] = Counter()
        gave_up = [op for op in self.ops if not op.ok]
        for op in gave_up:
            lost[op.example] += 1
        pending = common.not_completed(self.server)
        for row in pending:
            target = str(row["target"])
            example = next(
                (
                    e.name
                    for e in catalog.EXAMPLES
                    for prefix in e.restate_services
                    if target.startswith(prefix)
                ),
                "other",
            )
            if not any(row["id"] in op.invocations for op in gave_up):
                lost[example] += 1
        missing = 0
        same_payment: Counter[str] = Counter()
        for op in self.ops:
            if op.example != "subscriptions" or not op.ok:
                continue
            invocation = op.invocations[0]
            payments = effects.get((invocation, "create_recurring_payment", ""), [])
            missing += not payments
            missing += sum(
                1
                for sub in op.detail["subscriptions"]
                if not effects.get((invocation, "create_subscription", sub))
            )
            if len({run[2]["stub_args"][1] for run in payments}) > 1:
                same_payment["differs"] += 1
            elif len(payments) > 1:
                same_payment["same"] += 1
        lost["subscriptions"] += missing

        stored = common.greeter_counts(self.server)
        keys = set(self.greets) | set(self.ungreets)
        mismatches = [k for k in keys if stored.get(k, 0) != self.greets[k] - self.ungreets[k]]
        lost["user-object"] += len(mismatches)  # a lost (or doubled) greeting
        # Each key's answers, exactly: Restate runs one handler of a key at a time, so its
        # counts walk from 0 to the stored count, a greet k -> k+1, an ungreet k+1 -> k. Such
        # a walk crosses each step k -> k+1 once more upwards than downwards below the final
        # count, as often both ways above it. A lost greeting (its count not kept) makes the
        # next greet answer the same number again, a doubled one skips a number: either breaks
        # this, and the two do not cancel out.
        sequences_wrong = [
            k
            for k in keys
            if not _a_walk(self.greet_counts[k], self.ungreet_counts[k], stored.get(k, 0))
        ]
        lost["user-object"] += len(sequences_wrong)

        users = Counter(  # the users that got their email (the workflow's second step)
            str(r["stub_args"][0])
            for r in self.services["signup-workflow"].records("stub executed")
            if r["step"] == "send_email_with_link"
        )
        runs = common.invocations_by_key(self.server, "SignupWorkflow", "run")
        twice = sum(1 for n in runs.values() if n > 1)
        wrong_outputs = 0
        for op in self.ops:
            if op.example == "signup-workflow" and op.ok:
                if op.detail.get("output") is not op.detail["right_secret"]:
                    wrong_outputs += 1
                if users[op.detail["user"]] == 0:
                    lost["signup-workflow"] += 1
        awakeables_wrong = 0
        announced: dict[str, set[str]] = defaultdict(set)
        for (invocation, step, _), runs_ in effects.items():
            if step == "announce_awakeable":
                announced[invocation] |= {str(run[2]["stub_args"][1]) for run in runs_}
        for op in self.ops:
            if op.example == "building-blocks" and op.ok:
                output = op.detail.get("output") or {}
                if (
                    output.get("greeting") != op.detail["greeting"]
                    or announced[op.invocations[0]] != {op.detail["awakeable"]}
                    or not effects.get((op.invocations[0], "charge_bank_account", ""))
                ):
                    awakeables_wrong += 1
        # The one-way `create` message and the delayed `cancel` of every run: each reached the
        # object once (its counters; a run also calls `create` once).
        runs_done = sum(1 for op in self.ops if op.example == "building-blocks" and op.ok)
        rows = self.server.query(
            "SELECT key, value_utf8 FROM state WHERE service_name = 'SubscriptionObject' "
            "AND service_key = 'my-sub-123'"
        )
        counters = {str(r["key"]): json.loads(r["value_utf8"]) for r in rows}
        subscription_object = {
            "created": counters.get("created", 0),
            "cancelled": counters.get("cancelled", 0),
            "expected_created": 2 * runs_done,
            "expected_cancelled": runs_done,
        }
        subscription_object_wrong = int(
            subscription_object["created"] != 2 * runs_done
            or subscription_object["cancelled"] != runs_done
        )
        checks = {
            "not_completed": len(pending),
            "not_completed_rows": pending[:10],
            "client_gave_up": len(gave_up),
            "missing_effects": missing,
            "greeter_keys": len(keys),
            "greeter_mismatches": len(mismatches),
            "greeter_mismatch_keys": {
                k: [stored.get(k, 0), self.greets[k], self.ungreets[k]] for k in mismatches[:10]
            },
            "greets": sum(self.greets.values()),
            "ungreets": sum(self.ungreets.values()),
            "greeter_sequences_checked": len(keys),
            "greeter_sequences_wrong": len(sequences_wrong),
            "greeter_sequence_wrong_keys": {
                k: [sorted(self.greet_counts[k]), sorted(self.ungreet_counts[k])]
                for k in sequences_wrong[:5]
            },
            "subscription_object": subscription_object,
            "subscription_object_wrong": subscription_object_wrong,
            "workflows_run_twice": twice,
            "workflow_wrong_outputs": wrong_outputs,
            "awakeables_wrong": awakeables_wrong,
            "payments_differ": same_payment["differs"],
            "same_payment_id": (
                f"{same_payment['same']} repeated with the same payment id, "
                f"{same_payment['differs']} with a different one"
            ),
        }
        return checks, lost


def journal_evidence(
    first: tuple[float, dict[str, Any]],
    second: tuple[float, dict[str, Any]],
    last: dict[str, Any],
    journal: common.Journal | None,
    server_kills: list[float],
) -> tuple[bool, str]:
    """Whether Restate's journal shows that the `first` execution's result was never
    acknowledged, and what it shows: the journal holds the step (by its `run` name) with its
    result appended after the `second` execution started, that result is the `last`
    execution's, and the two executions ran in different attempts. Anything else is no
    evidence (a result journaled before the second execution: it was acknowledged, and
    running the step again is a bug)."""
    (t1, r1), (t2, r2) = first, second
    if journal is None:
        return False, "no journal in sys_journal: no evidence"
    run = journal.runs.get(str(r1.get("run")))
    if run is None or run.completed_at is None:
        return False, f"no stored result for {r1.get('run')!r} in the journal: no evidence"
    if r1.get("attempt") is None or r1.get("attempt") == r2.get("attempt"):
        return False, f"both executions in attempt {r1.get('attempt')}"
    stored = f"result journaled at {run.completed_at - t1:+.3f} s from the first execution"
    if run.completed_at < t2 - LOG_RESOLUTION_S:
        return False, f"{stored}, before the second ({t2 - t1:+.3f} s): acknowledged"
    if run.result != last.get("result"):
        return False, f"{stored}, but not the last execution's result: {run.result!r}"
    # What ended the first attempt, as Restate recorded it (or the server's kill): the earliest.
    ended = sorted(
        [
            (at, f"Restate recorded the attempt failing at {at - t1:+.3f} s ({message[:70]})")
            for at, after, message in journal.failed_attempts
            if t1 - LOG_RESOLUTION_S <= at <= t2 + LOG_RESOLUTION_S
            and (run.completion_index is None or after < run.completion_index)
        ]
        + [
            (k, f"restate-server SIGKILLed at {k - t1:+.2f} s")
            for k in server_kills
            if t1 - SERVER_LEAD_S <= k <= t2
        ]
    )
    return True, (
        f"{stored}, with attempt {last.get('attempt')}'s result (first in attempt "
        f"{r1.get('attempt')}); {ended[0][1] if ended else 'no failed attempt recorded between'}"
    )


def _raise_probabilities() -> dict[str, float]:
    """The subscriptions stubs' default failure probabilities, as the services run them."""
    import subscriptions.stubs  # noqa: F401  (registers its stubs' defaults)
    from examples_runtime.stubs import DEFAULT_FAILURE_PROBABILITIES

    return {
        step: DEFAULT_FAILURE_PROBABILITIES[step]
        for step in ("create_recurring_payment", "create_subscription")
    }


def _a_walk(greets: list[int], ungreets: list[int], final: int) -> bool:
    """Whether these answers can be one walk from 0 to `final` (greets answer k+1 from k,
    ungreets k from k+1)."""
    up, down = Counter(greets), Counter(ungreets)
    top = max([final, *greets, *(u + 1 for u in ungreets)])
    return all(up[k + 1] - down[k] == (k < final) for k in range(top))


def _nth(greeting: str) -> int:
    """The N of the greeter's answer "Hi <key> for the N-th time."."""
    return int(greeting.rsplit(" for the ", 1)[1].split("-th", 1)[0])


def run_soak(config: SoakConfig, workdir: Path) -> dict[str, Any]:
    soak = Soak(config, workdir)
    try:
        soak.start()
        result = soak.run()
    finally:
        soak.close()
    result["failures"] = failures(result)
    return result


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in ("faults", "totals", "checks", "window", "failures")}


# Every check of the effects that must be 0 for the run to pass (its exit code).
MUST_BE_ZERO = (
    "not_completed",
    "client_gave_up",
    "missing_effects",
    "greeter_mismatches",
    "greeter_sequences_wrong",
    "workflows_run_twice",
    "workflow_wrong_outputs",
    "awakeables_wrong",
    "subscription_object_wrong",
    "payments_differ",
)


def failures(result: dict[str, Any]) -> list[str]:
    """What failed: the totals, every check that must be 0 and every fault that did not
    happen as planned, each with its value."""
    found = {
        "lost": result["totals"]["lost"],
        "duplicated_outside_window": result["totals"]["duplicated_outside_window"],
    }
    found |= {name: result["checks"][name] for name in MUST_BE_ZERO}
    # The faults the run claims really happened, and the graceful path stayed graceful.
    config, faults = result["config"], result["faults"]
    found |= {
        "server_kills_missing": len(config["server_kill_at"]) - len(faults["server_kills"]),
        "service_sigkills_missing": config["service_kills"] - faults["service_sigkills"],
        "no_crash_in_crash_phase": int(config["crash_phase"] and not faults["crashes"]),
        # One to switch subscriptions to crash mode, one of user-object mid-load.
        "sigterms_missing": config["crash_phase"] + config["sigterm"] - len(faults["sigterms"]),
        "sigterms_not_graceful": sum(
            1 for t in faults["sigterms"] if t["exit_code"] != 0 or not t["stopped_logged"]
        ),
    }
    return [f"{name} = {value}" for name, value in found.items() if value]


def _failed(result: dict[str, Any]) -> bool:
    return bool(result["failures"])


def main() -> None:
    common.run_cli(
        "soak",
        __doc__.split("\n\n")[0],
        (SoakConfig(), SHORT),
        run_soak,
        ("--operations", "operations", "client operations"),
        _summary,
        _failed,
    )


if __name__ == "__main__":
    main()
