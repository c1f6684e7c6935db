"""Fuzzing every public endpoint of the four examples, with input nobody here chose.

    .venv/bin/python -m reliability.fuzz         # make fuzz: writes docs/reliability.json/.md
    .venv/bin/python -m reliability.fuzz --short # the bounded run of the pytest suite

- schemathesis, with the OpenAPI document Restate's admin API serves for each registered
  service (`GET /services/<name>/openapi`), against the Restate ingress: schema-valid
  (positive) and schema-violating (negative) cases for every operation (call, send, attach);
- raw malformed bodies for every handler: bad UTF-8, a body just under and one over Restate's
  32 MiB limit, deep nesting, wrong content types, empty bodies with and without a content
  type, NaN, a BOM, trailing data...;
- hypothesis against the services' own routes (`/verify/<user>?secret=` of signup-workflow,
  `/awakeables` of building-blocks, and any other path on their ports).

Invariants: no 5xx from anything a service answers (a 5xx of Restate's ingress itself is
counted apart), every 4xx names the problem, schema-violating bodies are refused, no
invocation is left retrying (`sys_invocation`), and the services stay healthy with their state
right (the greeter counts equal the requests that succeeded; the documented requests work).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import catalog
import httpx

from reliability import common
from testkit.processes import eventually
from testkit.restate import ExampleService, RestateServer, install_restate

SERVICES = [service for e in catalog.EXAMPLES for service in e.restate_services]
MiB = 1024 * 1024
LIMIT = 32 * MiB  # Restate's ingress refuses larger bodies (413)


@dataclass(frozen=True)
class FuzzConfig:
    examples: int = 120  # per operation and generation mode (positive, negative)
    route_examples: int = 400  # per property of the services' own routes
    huge_bodies: bool = True  # the ~32 MiB ones
    seed: int = 12
    request_timeout_s: float = 60.0


SHORT = FuzzConfig(examples=12, route_examples=60, huge_bodies=False)


@dataclass
class Answer:
    target: str  # "GreeterObject greet (call)", "/verify"...
    mode: str  # positive, negative, raw, route
    status: int
    source: str  # ingress, invocation, service (a route answered by the service itself)
    message: str
    request: str  # enough to reproduce


@dataclass
class Tally:
    answers: list[Answer] = field(default_factory=list)
    negative_accepted: list[str] = field(default_factory=list)
    sent_invalid: dict[str, str] = field(default_factory=dict)  # invocation id -> request
    idempotency_keys: set[tuple[str, str]] = field(default_factory=set)
    deduplicated: int = 0
    timeouts: list[str] = field(default_factory=list)
    greeter_ops: list[tuple[str, str, str | None, int, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)


def message_of(response: httpx.Response) -> str:
    """The problem a 4xx/5xx names: Restate's `message`, the runtime's or FastAPI's `error` or
    `detail`, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict):
        for name in ("message", "error", "detail"):
            if body.get(name):
                return str(body[name])[:300]
    return json.dumps(body)[:300]


class Fuzz:
    def __init__(self, config: FuzzConfig, workdir: Path) -> None:
        self.config = config
        self.server = RestateServer(install_restate(), workdir)
        self.services = {
            name: ExampleService(
                name,
                workdir,
                {
                    "RESTATE_INGRESS_URL": self.server.ingress_url,
                    "BUILDING_BLOCKS_SLEEP_SECONDS": "0.1",
                    "BUILDING_BLOCKS_CANCEL_DELAY_SECONDS": "1",
                    # No injected failures: any retry Restate makes is then a finding.
                    **(
                        {
                            "FAILURE_PROBABILITIES": json.dumps(
                                {"create_recurring_payment": 0, "create_subscription": 0}
                            )
                        }
                        if name == "subscriptions"
                        else {}
                    ),
                },
            )
            for name in catalog.BY_NAME
        }
        self.tally = Tally()
        self.ingress = httpx.Client(
            base_url=self.server.ingress_url, timeout=config.request_timeout_s
        )
        self.helper = httpx.Client(base_url=self.server.ingress_url, timeout=30)
        self.started = 0.0

    def start(self) -> None:
        self.server.start()
        for service in self.services.values():
            service.start()
            self.server.register(service.url, force=True)

    def close(self) -> None:
        self.ingress.close()
        self.helper.close()
        for service in self.services.values():
            service.stop()
        self.server.stop()

    # --- what a user does for the invocations that wait ---------------------------------------

    def _on_stub(self, service: str, record: dict[str, Any]) -> None:
        """Resolves every awakeable and clicks every email link, so that `run`s complete."""
        args = record["stub_args"]
        with contextlib.suppress(httpx.HTTPError):
            if record["step"] == "announce_awakeable":
                self.helper.post(f"/restate/awakeables/{args[1]}/resolve", json="fuzz")
            elif record["step"] == "send_email_with_link":
                self.helper.post(
                    f"/SignupWorkflow/{quote(str(args[0]), safe='')}/click", json=args[2]
                )

    # --- classification -------------------------------------------------------------------------

    def record(
        self, target: str, mode: str, response: httpx.Response, request: str, own_route: bool
    ) -> Answer:
        source = "service" if own_route else response.headers.get("x-restate-error-source", "")
        if not source and not own_route:
            source = "ingress" if response.status_code >= 400 else ""
        answer = Answer(
            target,
            mode,
            response.status_code,
            source,
            message_of(response) if response.status_code >= 400 else "",
            request[:300],
        )
        self.tally.add(answer)
        return answer

    # --- schemathesis against the ingress ---------------------------------------------------------

    def schemathesis(self) -> None:
        import schemathesis
        from hypothesis import HealthCheck, Phase, given, seed, settings
        from schemathesis import GenerationMode
        from schemathesis.core.result import Err

        for name in SERVICES:
            document = self.server.admin.get(f"/services/{name}/openapi").json()
            schema = schemathesis.openapi.from_dict(document)
            for result in schema.get_all_operations():
                if isinstance(result, Err):
                    raise result.err()  # Restate's document did not load: a finding too
                operation = result.ok()
                body_schema = _body_schema(document, operation.method, operation.path)
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    target = f"{name} {operation.method.upper()} {operation.path}"

                    def prop(
                        target: str, mode: str, body_schema: dict[str, Any] | None
                    ) -> Callable[[Any], None]:
                        def send_case(case: Any) -> None:
                            self._send_case(case, target, mode, body_schema)

                        return send_case

                    send = seed(self.config.seed)(
                        settings(
                            max_examples=self.config.examples,
                            deadline=None,
                            database=None,
                            phases=[Phase.explicit, Phase.generate],
                            suppress_health_check=list(HealthCheck),
                        )(
                            given(operation.as_strategy(generation_mode=mode))(
                                prop(target, mode.value, body_schema)
                            )
                        )
                    )
                    try:
                        send()
                    except Exception as error:  # e.g. no negative case exists for a bodyless op
                        self.tally.add(
                            Answer(target, mode.value, 0, "generation", str(error)[:200], "")
                        )

    def _send_case(
        self, case: Any, target: str, mode: str, body_schema: dict[str, Any] | None
    ) -> None:
        kwargs = case.as_transport_kwargs(base_url=self.server.ingress_url)
        method, url = kwargs.pop("method"), kwargs.pop("url")
        headers = {k: str(v) for k, v in (kwargs.pop("headers", None) or {}).items()}
        content = kwargs.pop("data", None)
        if "json" in kwargs:
            content = json.dumps(kwargs.pop("json")).encode()
            headers.setdefault("Content-Type", "application/json")
        request = f"{method} {url} {headers} {str(content)[:120]}"
        try:
            response = self.ingress.request(
                method, url, headers=headers, content=content, params=kwargs.get("params")
            )
        except httpx.TimeoutException:
            self.tally.timeouts.append(request)
            return
        except (httpx.HTTPError, UnicodeEncodeError, ValueError) as error:
            # Not sendable (e.g. a header value httpx cannot encode): nothing reached Restate.
            self.tally.add(Answer(target, mode, 0, "client", str(error)[:120], request))
            return
        answer = self.record(target, mode, response, request, own_route=False)
        idempotency = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
        repeated = idempotency is not None and (url, idempotency) in self.tally.idempotency_keys
        if idempotency is not None:
            self.tally.idempotency_keys.add((url, idempotency))
        if repeated and 200 <= answer.status < 300:
            # Restate answers a known idempotency key (even an empty one) with the first
            # request's result; this body was never looked at.
            self.tally.deduplicated += 1
        elif (
            mode == "negative"
            and 200 <= answer.status < 300
            and body_schema is not None
            and not _valid(case.body, body_schema)
        ):
            if answer.status != 202:
                self.tally.negative_accepted.append(f"{request} -> {answer.status}")
            elif (sent := response.json()).get("status") == "Accepted":
                # A one-way send is accepted before the service sees the body; its invocation
                # must then end with the service's 400 (checked afterwards). Not so for
                # "PreviouslyAccepted": the key's one run (or this idempotency key) was used
                # already, and this body was never looked at.
                self.tally.sent_invalid[sent["invocationId"]] = request
        if (
            "GreeterObject" in target
            and "/restate/call/" in target
            and "key" in (case.path_parameters or {})
        ):
            handler = "greet" if target.endswith("/greet") else "ungreet"
            key = unquote(str(case.path_parameters["key"]))  # as Restate decodes it
            self.tally.greeter_ops.append((key, handler, idempotency, answer.status, True))
        elif "GreeterObject" in target and "/restate/send/" in target:
            key = unquote(str((case.path_parameters or {}).get("key", "")))
            self.tally.greeter_ops.append((key, "send", None, answer.status, False))

    # --- raw malformed bodies ------------------------------------------------------------------

    def raw(self) -> list[dict[str, Any]]:
        json_ct = {"content-type": "application/json"}
        bodies: list[tuple[str, dict[str, str], bytes, bool]] = [
            # (label, headers, body, may be accepted: a valid value for a string handler)
            ("bad UTF-8 in a string", json_ct, b'"\xff\xfe"', False),
            ("bad UTF-8, not JSON", json_ct, b"\xc3\x28{", False),
            ("lone surrogate escape", json_ct, b'"\\ud800"', False),
            ("UTF-8 BOM", json_ct, b'\xef\xbb\xbf"x"', False),
            ("deep nesting (100k arrays)", json_ct, b"[" * 100_000 + b"]" * 100_000, False),
            (
                "deep nesting (10k objects)",
                json_ct,
                b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
                False,
            ),
            ("NaN", json_ct, b"NaN", False),
            ("huge number", json_ct, b"1e999999", False),
            ("trailing data", json_ct, b'"x" "y"', False),
            ("null", json_ct, b"null", False),
            ("empty body, JSON content type", json_ct, b"", False),
            ("empty body, no content type", {}, b"", False),
            ("whitespace body", json_ct, b"  \n ", False),
            ("text/plain", {"content-type": "text/plain"}, b'"x"', False),
            ("application/xml", {"content-type": "application/xml"}, b"<x/>", False),
            ("form", {"content-type": "application/x-www-form-urlencoded"}, b"a=b", False),
            ("multipart", {"content-type": "multipart/form-data; boundary=x"}, b"--x--", False),
            ("JSON, upper case type", {"content-type": "APPLICATION/JSON"}, b'"x"', False),
            (
                "JSON; charset=utf-8",
                {"content-type": "application/json; charset=utf-8"},
                b'"x"',
                True,
            ),
            ("no content type, a body", {}, b'"x"', False),
        ]
        if self.config.huge_bodies:
            bodies += [
                ("31 MiB string", json_ct, b'"' + b"a" * (31 * MiB) + b'"', True),
                ("31 MiB of '['", json_ct, b"[" * (31 * MiB), False),
                ("33 MiB (over the 32 MiB limit)", json_ct, b'"' + b"a" * (33 * MiB) + b'"', False),
            ]
        handlers = [
            ("SubscriptionService/add", "/SubscriptionService/add", "object"),
            ("GreeterObject/greet", "/GreeterObject/raw/greet", "string"),
            ("GreeterObject/ungreet", "/GreeterObject/raw/ungreet", "none"),
            ("SignupWorkflow/run", "/SignupWorkflow/raw-{n}/run", "object"),
            ("SignupWorkflow/click", "/SignupWorkflow/raw-click/click", "string"),
            ("MyService/run", "/MyService/run/send", "none"),
            ("SubscriptionObject/create", "/SubscriptionObject/raw/create", "string"),
        ]
        rows = []
        for n, (label, headers, body, maybe_ok) in enumerate(bodies):
            for handler, path, takes in handlers:
                if len(body) > MiB and handler not in ("GreeterObject/greet", "SignupWorkflow/run"):
                    continue  # the big ones on two handlers are enough
                url = path.format(n=n)
                try:
                    response = self.ingress.post(url, headers=headers, content=body)
                except httpx.HTTPError as error:
                    rows.append(
                        {
                            "input": label,
                            "handler": handler,
                            "status": 0,
                            "source": "client",
                            "message": str(error)[:100],
                            "ok": False,
                        }
                    )
                    continue
                answer = self.record(handler, "raw", response, f"POST {url} {label}", False)
                accepted_ok = maybe_ok and takes == "string" and answer.status == 200
                bodyless_ok = takes == "none" and label.startswith("empty body, no")
                rows.append(
                    {
                        "input": label,
                        "handler": handler,
                        "status": answer.status,
                        "source": answer.source,
                        "message": answer.message or response.text[:80],
                        "ok": (400 <= answer.status < 500 and bool(answer.message))
                        or accepted_ok
                        or bodyless_ok
                        or (answer.status in (200, 202) and maybe_ok),
                    }
                )
        return rows

    # --- the services' own routes -----------------------------------------------------------------

    def routes(self) -> None:
        from hypothesis import HealthCheck, given, seed, settings
        from hypothesis import strategies as st

        signup = self.services["signup-workflow"].url
        blocks = self.services["building-blocks"].url
        client = httpx.Client(timeout=self.config.request_timeout_s)
        common = settings(
            max_examples=self.config.route_examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )

        def send(target: str, method: str, url: str, **kwargs: Any) -> None:
            request = f"{method} {url} {kwargs}"[:300]
            try:
                response = client.request(method, url, **kwargs)
            except httpx.TimeoutException:
                self.tally.timeouts.append(request)
                return
            self.record(target, "route", response, request, own_route=True)

        text = st.text(max_size=60)
        raw_query = st.binary(max_size=40).map(lambda b: quote(b, safe=""))

        @seed(self.config.seed)
        @common
        @given(user=text, secret=text)
        def verify(user: str, secret: str) -> None:
            url = f"{signup}/verify/{quote(user, safe='')}?secret={quote(secret, safe='')}"
            send("/verify (text)", "GET", url)

        @seed(self.config.seed)
        @common
        @given(
            user=raw_query, query=raw_query, name=st.sampled_from(["secret", "s", "", "secret[]"])
        )
        def verify_bytes(user: str, query: str, name: str) -> None:
            send("/verify (bytes)", "GET", f"{signup}/verify/{user}?{name}={query}")

        @seed(self.config.seed)
        @common
        @given(
            method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]),
            suffix=raw_query,
            query=raw_query,
            body=st.binary(max_size=100),
        )
        def awakeables(method: str, suffix: str, query: str, body: bytes) -> None:
            send("/awakeables", method, f"{blocks}/awakeables{suffix}?{query}", content=body)

        @seed(self.config.seed)
        @common
        @given(
            service=st.sampled_from([signup, blocks]),
            method=st.sampled_from(["GET", "POST"]),
            path=st.sampled_from(
                ["verify", "awakeables", "healthz", "readyz", "metrics", "docs"]
            ).flatmap(lambda p: raw_query.map(lambda s: f"/{p}/{s}")),
        )
        def other_paths(service: str, method: str, path: str) -> None:
            send("other paths of the operations app", method, f"{service}{path}")

        for prop in (verify, verify_bytes, awakeables, other_paths):
            prop()
        client.close()

    # --- afterwards -----------------------------------------------------------------------------

    def after(self) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        pending = common.not_completed(self.server)
        while time.monotonic() < deadline and any(r["status"] != "scheduled" for r in pending):
            time.sleep(1)
            pending = common.not_completed(self.server)
        retrying = [r for r in pending if r["status"] != "scheduled"]
        for row in _outcomes(self.server, list(self.tally.sent_invalid)):
            if row["status"] == "scheduled":
                continue  # a fuzzed `delay`: it has not run yet
            if not str(row.get("completion_failure") or "").startswith("[400]"):
                self.tally.negative_accepted.append(
                    f"{self.tally.sent_invalid[row['id']]} -> 202, then "
                    f"{row['status']} {row.get('completion_result')} "
                    f"{row.get('completion_failure')}"
                )
        retried = common.retried(self.server)
        healthy = common.services_healthy(self.services.values())
        stored = common.greeter_counts(self.server)
        expected, checked = _expected_greeter_counts(self.tally.greeter_ops)
        mismatches = {
            k: [stored.get(k, 0), v] for k, v in expected.items() if stored.get(k, 0) != v
        }
        return {
            "not_completed": len(pending),
            "scheduled": len(pending) - len(retrying),
            "retrying": len(retrying),
            "retrying_rows": retrying[:10],
            "retried": len(retried),
            "retried_rows": retried[:10],
            "healthy": all(healthy.values()),
            "healthy_by_service": healthy,
            "greeter_keys_checked": checked,
            "greeter_mismatches": len(mismatches),
            "greeter_mismatch_rows": dict(list(mismatches.items())[:10]),
            "documented_requests_ok": self.documented_requests(),
        }

    def documented_requests(self) -> bool:
        """The README's requests, on fresh keys, after all that."""
        key = f"after-fuzz-{time.time_ns()}"
        c = self.helper
        ok = (
            c.post(f"/GreeterObject/{key}/greet", json="Hi").json()
            == f"Hi {key} for the 1-th time."
        )
        ok &= (
            c.post(f"/GreeterObject/{key}/greet", json="Hi").json()
            == f"Hi {key} for the 2-th time."
        )
        ok &= c.post(f"/GreeterObject/{key}/ungreet").json() == (
            f"Dear {key}, taking one greeting back: 1."
        )
        add = c.post(
            "/SubscriptionService/add",
            json={"userId": key, "creditCard": "1234", "subscriptions": ["Netflix"]},
        )
        ok &= add.status_code == 200
        ok &= (
            c.post(
                f"/SignupWorkflow/{key}/run/send", json={"name": "Bob", "email": "b@x"}
            ).status_code
            == 202
        )
        ok &= (
            c.get(f"/restate/workflow/SignupWorkflow/{key}/attach").json() is True
        )  # resolver clicks
        run = c.post("/MyService/run", headers={"idempotency-key": key})  # resolver resolves
        ok &= run.json() == {"rpcResult": "SUCCESS", "greeting": "fuzz", "charged": True}
        return bool(ok)

    def unreachable_deployment(self) -> dict[str, Any]:
        """What Restate's ingress answers while a service process is down: no 5xx, the call
        waits while Restate retries the invocation, which completes once the process is back."""
        service = self.services["user-object"]
        service.process.kill()
        started = time.monotonic()
        try:
            waited = self.helper.post(
                "/GreeterObject/unreachable/greet",
                json="Hi",
                headers={"idempotency-key": "unreachable"},
                timeout=3,
            )
            during = f"{waited.status_code} {message_of(waited)}"
        except httpx.TimeoutException:
            during = "no answer within 3 s (the call waits)"
        query = (
            "SELECT status, retry_count, last_failure FROM sys_invocation "
            "WHERE target_service_name = 'GreeterObject' AND target_service_key = 'unreachable'"
        )
        with contextlib.suppress(TimeoutError):
            eventually(
                lambda: [r for r in self.server.query(query) if r.get("last_failure")],
                15,
                "Restate to record the failed attempts",
            )
        rows = self.server.query(query) or [{"status": "?", "retry_count": 0, "last_failure": ""}]
        service.start()
        done = self.helper.post(
            "/GreeterObject/unreachable/greet",
            json="Hi",
            headers={"idempotency-key": "unreachable"},
            timeout=60,
        )
        return {
            "during": during,
            "restate_status": rows[0]["status"],
            "attempts": rows[0]["retry_count"],
            "last_failure": str(rows[0]["last_failure"])[:200],
            "after_restart": f"{done.status_code} {done.text[:80]}",
            "seconds": time.monotonic() - started,
        }

    def run(self) -> dict[str, Any]:
        import hypothesis
        import schemathesis

        self.started = time.time()
        with common.StubFollower(self.services.values(), self._on_stub):
            self.schemathesis()
            raw = self.raw()
            self.routes()
            after = self.after()
            unreachable = self.unreachable_deployment()
        result = self.summarize(raw, after, schemathesis.__version__, hypothesis.__version__)
        result["unreachable_deployment"] = unreachable
        return result

    def summarize(
        self, raw: list[dict[str, Any]], after: dict[str, Any], st_version: str, hy_version: str
    ) -> dict[str, Any]:
        answers = [a for a in self.tally.answers if a.source not in ("generation", "client")]
        targets: dict[str, Counter[str]] = defaultdict(Counter)
        for a in answers:
            group = a.target.split(" ")[0] if a.mode != "route" else a.target
            if a.mode == "raw":
                group = "raw bodies"
            c = targets[group]
            c["cases"] += 1
            c[f"{a.status // 100}xx"] += 1
            if _unnamed(a):
                c["4xx_without_message"] += 1
            if a.status >= 500:
                c["5xx_ingress" if a.source == "ingress" else "5xx_service"] += 1
        for group in targets:
            for k in ("2xx", "4xx", "4xx_without_message", "5xx_service", "5xx_ingress"):
                targets[group].setdefault(k, 0)
            targets[group]["negative_accepted"] = sum(
                1 for n in self.tally.negative_accepted if f"/{group}/" in n
            )
        by_answer: dict[tuple[int, str], list[Answer]] = defaultdict(list)
        for a in answers:
            by_answer[(a.status, a.source)].append(a)
        failures = [
            f"{a.status} {a.source} {a.target}: {a.message[:120]} <- {a.request[:160]}"
            for a in answers
            if (a.status >= 500 and a.source != "ingress") or _unnamed(a)
        ]
        ingress_5xx = [
            f"{a.status} {a.target}: {a.message[:120]} <- {a.request[:160]}"
            for a in answers
            if a.status >= 500 and a.source == "ingress"
        ]
        return {
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "seconds": time.time() - self.started,
            "config": asdict(self.config),
            "schemathesis": st_version,
            "hypothesis": hy_version,
            "examples_per_operation": self.config.examples,
            "cases": len(answers),
            "targets": {k: dict(v) for k, v in sorted(targets.items())},
            "answers": [
                {
                    "status": status,
                    "source": source or "-",
                    "count": len(items),
                    "example": items[0].message or "(no body)",
                }
                for (status, source), items in sorted(by_answer.items())
            ],
            "raw": raw,
            "raw_failures": [r for r in raw if not r["ok"]],
            "failures": failures[:30],
            "failure_count": len(failures),
            "ingress_5xx": ingress_5xx[:10],
            "negative_accepted": self.tally.negative_accepted[:20],
            "timeouts": self.tally.timeouts[:10],
            "not_sendable": sum(1 for a in self.tally.answers if a.source == "client"),
            "sent_invalid_checked": len(self.tally.sent_invalid),
            "deduplicated": self.tally.deduplicated,
            "no_negative_case": sorted(
                a.target
                for a in self.tally.answers
                if a.source == "generation" and "Unable to satisfy" in a.message
            ),
            "generation_errors": [
                f"{a.target} ({a.mode}): {a.message}"
                for a in self.tally.answers
                if a.source == "generation" and "Unable to satisfy" not in a.message
            ][:10],
            "after": after,
            "notes": [],
        }


def _unnamed(a: Answer) -> bool:
    """A 4xx of a service without a word on the problem (HEAD answers have no body at all)."""
    return (
        400 <= a.status < 500
        and not a.message
        and a.source in ("invocation", "service")
        and not a.request.startswith("HEAD")
    )


def _outcomes(server: RestateServer, ids: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for start in range(0, len(ids), 100):
        chunk = ", ".join(f"'{i}'" for i in ids[start : start + 100])
        rows += server.query(
            "SELECT id, status, completion_result, completion_failure FROM sys_invocation "
            f"WHERE id IN ({chunk})"
        )
    return rows


def _body_schema(document: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    operation = document["paths"][path][method.lower()]
    content = (operation.get("requestBody") or {}).get("content") or {}
    schema = (content.get("application/json") or {}).get("schema")
    if schema is None:
        return None
    return {**schema, "components": document.get("components", {})}


def _valid(body: Any, schema: dict[str, Any]) -> bool:
    import jsonschema_rs

    try:
        return bool(jsonschema_rs.validator_for(schema).is_valid(body))
    except Exception:  # a body schemathesis could not even encode
        return False


def _expected_greeter_counts(
    ops: list[tuple[str, str, str | None, int, bool]],
) -> tuple[dict[str, int], int]:
    """What each fuzzed greeter key's count must be, from the calls that succeeded, in order
    (schemathesis sends one request at a time). Keys also hit by a one-way `send` are skipped:
    whether those ran (a valid body, a fuzzed delay) is not known from the answer."""
    sent = {key for key, handler, _, _, _ in ops if handler == "send"}
    counts: dict[str, int] = {}
    seen: set[tuple[str, str, str]] = set()
    for key, handler, idempotency, status, _ in ops:
        if key in sent or status != 200:
            continue
        if idempotency is not None:
            if (key, handler, idempotency) in seen:
                continue  # Restate answered with the first request's result
            seen.add((key, handler, idempotency))
        count = counts.get(key, 0)
        counts[key] = count + 1 if handler == "greet" else max(0, count - 1)
    return counts, len(counts)


def run_fuzz(config: FuzzConfig, workdir: Path) -> dict[str, Any]:
    fuzz = Fuzz(config, workdir)
    try:
        fuzz.start()
        return fuzz.run()
    finally:
        fuzz.close()


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("raw", "answers", "config")}


def _failed(result: dict[str, Any]) -> bool:
    after = result["after"]
    return bool(
        result["failure_count"]
        or result["raw_failures"]
        or result["negative_accepted"]
        or after["retrying"]
        or not after["healthy"]
        or after["greeter_mismatches"]
        or not after["documented_requests_ok"]
    )


def main() -> None:
    common.run_cli(
        "fuzz",
        __doc__.split("\n\n")[0],
        (FuzzConfig(), SHORT),
        run_fuzz,
        ("--examples", "examples", "examples per operation and mode"),
        _summary,
        _failed,
    )


if __name__ == "__main__":
    main()
