"""8. SIGTERM: the service exits within a few seconds, even mid-invocation; Restate resumes it."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from testkit.processes import wait_until
from testkit.restate import ExampleService, Suite, SuiteFactory

# SHUTDOWN_GRACE_SECONDS is 5 by default; "a few seconds" leaves room for a loaded machine.
EXIT_WITHIN = 15.0


def handler_waiting(suite: Suite, service: ExampleService) -> tuple[str, str]:
    """Starts `MyService/run` (one-way) and waits until its handler runs, waiting on its
    awakeable: an in-flight request. (invocation id, awakeable id)."""
    invocation: str = suite.ingress.post("/MyService/run/send").json()["invocationId"]
    wait_until(
        lambda: invocation in httpx.get(f"{service.url}/awakeables").json(),
        30,
        "the handler to wait on its awakeable",
    )
    awakeable: str = httpx.get(f"{service.url}/awakeables").json()[invocation]
    return invocation, awakeable


def building_blocks(make_suite: SuiteFactory, server: str, grace: float) -> Suite:
    """The building-blocks service on one server (SERVER), no sleeps, a given grace period."""
    return make_suite(
        "building-blocks",
        env={
            "SERVER": server,
            "BUILDING_BLOCKS_SLEEP_SECONDS": "0",
            "BUILDING_BLOCKS_CANCEL_DELAY_SECONDS": "0",
            "SHUTDOWN_GRACE_SECONDS": str(grace),
        },
    )


def test_sigterm_mid_invocation_exits_and_the_invocation_completes_after_restart(
    make_suite: SuiteFactory,
) -> None:
    suite = make_suite("building-blocks", env={"BUILDING_BLOCKS_SLEEP_SECONDS": "0"})
    service = suite["building-blocks"]
    invocation, awakeable = handler_waiting(suite, service)

    started = time.monotonic()
    service.process.signal(signal.SIGTERM)
    code = service.process.wait(EXIT_WITHIN)
    assert code == 0, f"unclean exit {code}:\n{service.process.tail()}"
    assert time.monotonic() - started < EXIT_WITHIN

    service.start()
    suite.ingress.post(f"/restate/awakeables/{awakeable}/resolve", json="after restart")
    result = suite.ingress.get(f"/restate/invocation/{invocation}/attach")
    assert result.status_code == 200, result.text
    assert result.json()["greeting"] == "after restart"


def test_sigterm_after_traffic_exits_promptly(make_suite: SuiteFactory) -> None:
    # The SDK hooks SIGTERM on its first request; shutdown must still work after traffic.
    suite = make_suite("user-object")
    service = suite["user-object"]
    for _ in range(5):
        assert suite.ingress.post("/GreeterObject/term/greet", json="Hi").status_code == 200
    service.process.signal(signal.SIGTERM)
    assert service.process.wait(EXIT_WITHIN) == 0
    assert any(r["message"] == "stopped" for r in service.records())


# Under load: Restate keeps opening streams on its HTTP/2 connection while the service drains
# (on Kubernetes, every rollout and scale-down). Bounded: at most LOAD_MAX_SENDS one-way calls
# a cycle, for at most LOAD_MAX_SECONDS, on loopback.
GRACE_SECONDS = 5.0
CYCLES = 3
LOAD_THREADS = 4
LOAD_KEYS = 16
LOAD_MAX_SENDS = 600
LOAD_MAX_SECONDS = 30.0


class IngressLoad:
    """Threads sending one-way `SubscriptionObject/<key>/create` calls until stopped or capped."""

    def __init__(self, ingress_url: str, cycle: int) -> None:
        self.ingress_url = ingress_url
        self.cycle = cycle
        self.invocations: list[str] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sent = 0
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(LOAD_THREADS)
        ]

    def __enter__(self) -> IngressLoad:
        self._deadline = time.monotonic() + LOAD_MAX_SECONDS
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def sent(self) -> int:
        with self._lock:
            return self._sent

    def _run(self) -> None:
        with httpx.Client(base_url=self.ingress_url, timeout=30) as client:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                with self._lock:
                    if self._sent >= LOAD_MAX_SENDS:
                        return
                    n = self._sent
                    self._sent += 1
                key = f"load-{n % LOAD_KEYS}"
                answer = client.post(
                    f"/SubscriptionObject/{key}/create/send", json=f"cycle {self.cycle} #{n}"
                )
                with self._lock:
                    if answer.status_code == 202:
                        self.invocations.append(answer.json()["invocationId"])
                    else:
                        self.errors.append(f"{answer.status_code} {answer.text}")


def sigterm_under_load(suite: Suite, cycle: int) -> list[str]:
    """One cycle: SIGTERM mid-load; checks the exit. Returns the ids of the calls it sent."""
    service = suite["building-blocks"]
    # An invocation in flight when SIGTERM arrives: its handler waits on an awakeable, on an
    # open HTTP/2 stream from Restate. Woken after SIGTERM, it must finish on this process.
    in_flight, awakeable = handler_waiting(suite, service)

    def finish_in_flight() -> float:
        suite.ingress.post(f"/restate/awakeables/{awakeable}/resolve", json="draining")
        answer = httpx.get(
            f"{suite.server.ingress_url}/restate/invocation/{in_flight}/attach",
            timeout=GRACE_SECONDS + 5,
        )
        assert answer.status_code == 200, answer.text
        return time.monotonic()

    with IngressLoad(suite.server.ingress_url, cycle) as load, ThreadPoolExecutor(1) as pool:
        wait_until(lambda: load.sent() >= 50, 30, "the load to flow")
        started = time.monotonic()
        service.process.signal(signal.SIGTERM)
        finished = pool.submit(finish_in_flight)
        try:
            code = service.process.wait(EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"cycle {cycle}: running {EXIT_WITHIN}s after SIGTERM") from None
        took = time.monotonic() - started
        log = service.process.tail(40)
        assert code == 0, f"cycle {cycle}: exit code {code} {took:.1f}s after SIGTERM:\n{log}"
        assert len(service.records("stopped")) == cycle, f"cycle {cycle}: no 'stopped'\n{log}"
        assert took < GRACE_SECONDS + 3, f"cycle {cycle}: exit {took:.1f}s after SIGTERM"
        try:
            finished_after = finished.result(timeout=1) - started
        except Exception as error:
            raise AssertionError(
                f"cycle {cycle}: the in-flight invocation did not finish before the exit "
                f"({took:.1f}s after SIGTERM): {error!r}"
            ) from None
        assert finished_after < min(GRACE_SECONDS, took + 0.5), f"cycle {cycle}: too late"
    assert not load.errors, load.errors[:5]
    assert len(load.invocations) >= 50
    return load.invocations


# Both servers (SERVER): the drain (examples_runtime/shutdown.py) must hold whichever runs.
@pytest.mark.parametrize("server", ["granian", "hypercorn"])
def test_sigterm_under_load_finishes_in_flight_work_and_exits_cleanly(
    make_suite: SuiteFactory, server: str
) -> None:
    suite = building_blocks(make_suite, server, GRACE_SECONDS)
    invocations: list[str] = []
    for cycle in range(1, CYCLES + 1):
        invocations += sigterm_under_load(suite, cycle)
        suite["building-blocks"].start()  # as Kubernetes would

    # Nothing lost: every call of every cycle completes once the service is back.
    for invocation in invocations:
        answer = suite.ingress.get(f"/restate/invocation/{invocation}/attach")
        assert (answer.status_code, answer.json()) == (200, "SUCCESS"), answer.text
    not_completed = suite.server.query(
        "SELECT id, status FROM sys_invocation_status WHERE status != 'completed' "
        "AND target_service_name IN ('SubscriptionObject', 'MyService')"
    )
    assert not_completed == []


@pytest.mark.parametrize("server", ["granian", "hypercorn"])
def test_while_draining_readyz_is_503_and_new_invocations_wait_for_the_next_process(
    make_suite: SuiteFactory, server: str
) -> None:
    # A long grace: the process drains for as long as its in-flight invocation runs.
    suite = building_blocks(make_suite, server, 60)
    service = suite["building-blocks"]
    in_flight, awakeable = handler_waiting(suite, service)

    service.process.signal(signal.SIGTERM)
    wait_until(
        lambda: httpx.get(f"{service.url}/readyz").status_code == 503, 10, "/readyz to say 503"
    )
    # A new invocation is refused by the draining process: Restate keeps retrying it.
    late = suite.ingress.post("/SubscriptionObject/late/create/send", json="late").json()
    status = f"SELECT status FROM sys_invocation WHERE id = '{late['invocationId']}'"
    wait_until(
        lambda: suite.server.query(status) == [{"status": "backing-off"}],
        30,
        "Restate to retry the invocation the draining process refused",
    )
    assert service.process.running, "exited while an invocation was in flight"

    # The invocation in flight finishes on this process; then it exits cleanly.
    suite.ingress.post(f"/restate/awakeables/{awakeable}/resolve", json="draining")
    result = suite.ingress.get(f"/restate/invocation/{in_flight}/attach")
    assert result.json()["greeting"] == "draining", result.text
    assert service.process.wait(EXIT_WITHIN) == 0, service.process.tail()

    service.start()  # the refused invocation runs on the next process
    answer = suite.ingress.get(f"/restate/invocation/{late['invocationId']}/attach")
    assert (answer.status_code, answer.json()) == (200, "SUCCESS"), answer.text
