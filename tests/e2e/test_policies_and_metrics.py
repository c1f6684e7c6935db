"""The chart's security and observability claims, on real pods with a policy engine and a real
Prometheus: its NetworkPolicies let only Restate reach the services and only the operator
reach the admin API, and let Prometheus (namespace ``monitoring``, the chart's default
``networkPolicy.metricsFrom``, as the README tells users) scrape every metrics port; the
Grafana dashboard's queries all return series after traffic.

The local node enforces NetworkPolicies with kube-router's firewall; kind with kindnet's.
Every denied connection is also shown to succeed once the policies are off.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e import monitoring
from e2e.dashboard import render_latency_panel
from e2e.pods import example_image, installed, probe_pod

from localcluster.controlplane import REPO_ROOT
from plugins.real_cluster import RealCluster
from testkit.processes import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

NAMESPACE = "rx-policies"
RELEASE = "restate-examples"
FULLNAME = RELEASE
CHART = REPO_ROOT / "deploy" / "helm" / "restate-examples"
DASHBOARD = CHART / "dashboards" / "restate-examples.json"
EXAMPLES = ("subscriptions", "building-blocks", "user-object", "signup-workflow")
# A TCP connect from inside a pod to an address that resolved: "open", "refused" (a reset or an
# ICMP rejection) or "dropped" (no answer within 3 s), then the address. A name that does not
# resolve, or any other error, is "error ...": a fault of the test, never taken for a denial.
PROBE = """
import errno, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
except OSError as e:
    print("error resolving", host, e); sys.exit()
s = socket.socket(); s.settimeout(3)
try:
    s.connect(address); print("open", address[0])
except ConnectionRefusedError:
    print("refused", address[0])
except socket.timeout:
    print("dropped", address[0])
except OSError as e:
    rejected = e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM)
    print("refused" if rejected else "error", address[0], e)
"""
# Every connection the chart's NetworkPolicies deny, as (probing pod, Service, port): the tests
# below check each is denied, and the control with the policies off opens every one of them.
DENIED = [
    *(("intruder", example, 9080) for example in EXAMPLES),  # only Restate calls the handlers
    *(("intruder", example, 9090) for example in EXAMPLES),  # metrics: only metricsFrom
    ("intruder", "restate", 9070),  # the admin API: only the operator
    *(("scraper", example, 9080) for example in EXAMPLES),  # metricsFrom: metrics ports only
    ("scraper", "restate", 9070),
]
CHECKS = 3  # a denial is seen this many times in a row (a single miss could be a blip)


def _svc(name: str) -> str:
    return f"{FULLNAME}-{name}.{NAMESPACE}.svc.cluster.local"


@pytest.fixture(scope="module")
def prometheus(
    real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    monitoring.deploy(real_cluster, tmp_path_factory.mktemp("monitoring"))
    try:
        yield monitoring.NAMESPACE
    finally:
        monitoring.remove(real_cluster)


@pytest.fixture(scope="module")
def release(real_cluster: RealCluster, prometheus: str) -> Iterator[str]:
    with installed(real_cluster, RELEASE, NAMESPACE,
                   "--set", "metrics.grafanaDashboard.enabled=true") as namespace:  # fmt: skip
        yield namespace


def _image(cluster: RealCluster) -> str:
    return example_image(cluster, NAMESPACE)


def _probe_pod(cluster: RealCluster, namespace: str, name: str, image: str) -> str:
    return probe_pod(cluster, namespace, name, image, labels={"test": "probe"})


@pytest.fixture(scope="module")
def intruder(real_cluster: RealCluster, release: str) -> str:
    """A pod in the release's namespace that is neither Restate nor the operator."""
    return _probe_pod(real_cluster, NAMESPACE, "intruder", _image(real_cluster))


@pytest.fixture(scope="module")
def scraper(real_cluster: RealCluster, release: str, prometheus: str) -> str:
    """A pod in Prometheus's namespace (what metricsFrom admits)."""
    return _probe_pod(real_cluster, prometheus, "scrape-probe", _image(real_cluster))


def connect(cluster: RealCluster, namespace: str, pod: str, host: str, port: int) -> str:
    """What a TCP connect from ``pod`` to ``host:port`` gets: open, refused or dropped."""
    out = cluster.kubectl(
        "-n", namespace, "exec", pod, "--", "python", "-c", PROBE, host, str(port)
    ).strip()  # fmt: skip
    state = out.split(" ", 1)[0]
    if state not in ("open", "refused", "dropped"):
        raise AssertionError(f"probe from {pod} to {host}:{port} failed (not a denial): {out}")
    return state


def reaches(
    cluster: RealCluster, namespace: str, pod: str, host: str, port: int, timeout: float = 30
) -> bool:
    """The connection opens, within ``timeout``: a pod's address (or a policy change) reaches
    the policy engine's rules a moment after the fact (kube-router syncs on events)."""
    return bool(
        eventually(
            lambda: connect(cluster, namespace, pod, host, port) == "open",
            timeout,
            f"{pod} connecting to {host}:{port}",
            interval=1,
        )
    )


def denied(
    cluster: RealCluster, namespace: str, pod: str, host: str, port: int, timeout: float = 60
) -> bool:
    """The connection is refused or dropped ``CHECKS`` times in a row (after the rules caught
    up, within ``timeout``); an open connection among them fails the test."""
    first = eventually(
        lambda: connect(cluster, namespace, pod, host, port) != "open",
        timeout,
        f"{pod} denied {host}:{port}",
        interval=1,
    )
    seen = [first] + [connect(cluster, namespace, pod, host, port) for _ in range(CHECKS - 1)]
    assert "open" not in seen, f"{pod} -> {host}:{port}: {seen}"
    return True


@pytest.fixture(scope="module")
def probes(intruder: str, scraper: str, prometheus: str) -> dict[str, tuple[str, str]]:
    """The probing pods by name in DENIED: (namespace, pod)."""
    return {"intruder": (NAMESPACE, intruder), "scraper": (prometheus, scraper)}


def _denied_of(who: str) -> list[tuple[str, int]]:
    return [(_svc(target), port) for pod, target, port in DENIED if pod == who]


def _operator_pod(cluster: RealCluster) -> str:
    return cluster.kubectl(
        "-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=operator",
        "-o", "jsonpath={.items[0].metadata.name}",
    )  # fmt: skip


# ----------------------------------------------------------------------------- policies


def test_only_restate_reaches_the_services(
    real_cluster: RealCluster, release: str, intruder: str
) -> None:
    # Restate reaches them: every example answers through the ingress.
    with (
        real_cluster.port_forward(NAMESPACE, f"svc/{FULLNAME}-restate", 8080) as url,
        httpx.Client(base_url=url, timeout=60) as ingress,
    ):
        key = f"policy-{uuid.uuid4().hex[:6]}"
        answer = ingress.post(f"/GreeterObject/{key}/greet", json="Hi")
        assert answer.json() == f"Hi {key} for the 1-th time."
    # Another pod of the same namespace does not, by Service name or on the metrics ports.
    for host, port in _denied_of("intruder"):
        if port != 9070:
            assert denied(real_cluster, NAMESPACE, intruder, host, port)


def test_only_the_operator_reaches_the_admin_api(
    real_cluster: RealCluster, release: str, intruder: str
) -> None:
    assert denied(real_cluster, NAMESPACE, intruder, _svc("restate"), 9070)
    operator = _operator_pod(real_cluster)
    assert reaches(real_cluster, NAMESPACE, operator, _svc("restate"), 9070)
    # The ingress is the public entry point: open to every pod (as the chart documents).
    assert reaches(real_cluster, NAMESPACE, intruder, _svc("restate"), 8080)


def test_metrics_from_admits_only_the_metrics_ports(
    real_cluster: RealCluster, release: str, scraper: str, prometheus: str
) -> None:
    for example in EXAMPLES:
        assert reaches(real_cluster, prometheus, scraper, _svc(example), 9090)
    assert reaches(real_cluster, prometheus, scraper, _svc("operator-metrics"), 9090)
    assert reaches(real_cluster, prometheus, scraper, _svc("restate"), 5122)
    for host, port in _denied_of("scraper"):
        assert denied(real_cluster, prometheus, scraper, host, port)


# ----------------------------------------------------------------------------- Prometheus


@pytest.fixture(scope="module")
def prom(real_cluster: RealCluster, prometheus: str) -> Iterator[monitoring.PrometheusApi]:
    with real_cluster.port_forward(prometheus, "deploy/prometheus", 9090) as url:
        yield monitoring.PrometheusApi(url)


def _targets(prom: monitoring.PrometheusApi) -> dict[str, str]:
    return {
        f"{t['labels'].get('component')}/{t['labels'].get('example', '')}/{t['scrapeUrl']}": t[
            "health"
        ]
        for t in prom.targets()
        if t["labels"].get("namespace") == NAMESPACE
    }


def test_prometheus_scrapes_every_component(release: str, prom: monitoring.PrometheusApi) -> None:
    def all_up() -> dict[str, str] | None:
        found = _targets(prom)
        return found if len(found) == 6 and set(found.values()) == {"up"} else None

    targets = eventually(
        all_up,
        120,
        "six targets of the release up (four examples, the operator, Restate)",
        interval=2,
    )
    print("\nPrometheus targets:\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(targets.items())))
    up = prom.query(f'up{{namespace="{NAMESPACE}"}}')
    components = sorted(r["metric"].get("component", "") for r in up if r["value"][1] == "1")
    assert components == sorted(["example-service"] * 4 + ["operator", "restate-server"])


def _traffic(cluster: RealCluster) -> None:
    """The README's requests, a bounded number of times (loopback port-forward only)."""
    with (
        cluster.port_forward(NAMESPACE, f"svc/{FULLNAME}-restate", 8080) as url,
        httpx.Client(base_url=url, timeout=60) as ingress,
    ):
        # Spread over ~40 s, so that Prometheus (every 5 s) sees rates and percentiles move.
        deadline = time.monotonic() + 60
        for i in range(90):
            if time.monotonic() > deadline:
                break
            time.sleep(0.4)
            key = f"mary-{i % 7}"
            assert ingress.post(f"/GreeterObject/{key}/greet", json="Hi").status_code == 200
            if i % 3 == 0:
                assert ingress.post(f"/GreeterObject/{key}/ungreet").status_code == 200
            if i % 10 == 0:
                body = {"userId": f"Sam {i}", "creditCard": "1234-5678-9012-3456",
                        "subscriptions": ["Netflix", "Disney+"]}  # fmt: skip
                assert ingress.post("/SubscriptionService/add", json=body).status_code == 200
            if i % 20 == 0:
                user = f"user-{uuid.uuid4().hex[:6]}"
                ingress.post(f"/SignupWorkflow/{user}/run/send",
                             json={"name": "Bob", "email": "bob@builder.com"})  # fmt: skip
                ingress.post(f"/SignupWorkflow/{user}/click", json="not-the-secret")


@pytest.fixture(scope="module")
def traffic(real_cluster: RealCluster, release: str) -> None:
    _traffic(real_cluster)


def test_handler_and_operator_metrics_after_traffic(
    traffic: None, prom: monitoring.PrometheusApi
) -> None:
    ns = f'namespace="{NAMESPACE}"'

    def handlers(metric: str) -> set[str]:
        return {
            f"{r['metric']['service']}/{r['metric']['handler']}"
            for r in prom.query(f"sum by (service, handler) ({metric}{{{ns}}})")
        }

    expected = {"GreeterObject/greet", "GreeterObject/ungreet", "SubscriptionService/add",
                "SignupWorkflow/run", "SignupWorkflow/click"}  # fmt: skip
    eventually(lambda: expected <= handlers("restate_handler_attempts_total"), 60,
               "attempt counters of every handler called", interval=2)  # fmt: skip
    assert expected <= handlers("restate_handler_attempt_duration_seconds_bucket")
    # The operator's view: four workloads, each with one Current (registered) version.
    current = prom.query(f'sum(restate_operator_workload_versions{{{ns}, state="Current"}})')
    assert float(current[0]["value"][1]) == 4


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _instantiate(expr: str) -> str:
    """The dashboard's variables as Grafana fills them for this release."""
    return expr.replace("$namespace", NAMESPACE).replace("$__rate_interval", "1m")


def test_every_dashboard_query_returns_series(
    traffic: None, prom: monitoring.PrometheusApi, tmp_path: Path
) -> None:
    queries = _dashboard_queries()
    assert len(queries) >= 10
    for title, expr in queries:
        eventually(lambda e=expr: prom.query(_instantiate(e)), 60,  # type: ignore[misc]
                   f"series for the panel {title!r}: {expr}", interval=2)  # fmt: skip
    # One panel drawn to a picture (into docs/ with RESTATE_EXAMPLES_WRITE_DOCS=1).
    picture = render_latency_panel(prom, NAMESPACE, tmp_path / "dashboard-latency.png")
    assert picture.stat().st_size > 10_000
    if os.environ.get("RESTATE_EXAMPLES_WRITE_DOCS"):
        shutil.copyfile(picture, REPO_ROOT / "docs" / "dashboard-latency.png")


# ----------------------------------------------------------------------------- ServiceMonitors


@pytest.fixture
def service_monitor_crd(real_cluster: RealCluster, release: str) -> Iterator[None]:
    """The Prometheus Operator's real ServiceMonitor CRD (from its pinned Go module); on the
    way out the release is upgraded without ServiceMonitors before the CRD goes, as a user
    removing the Prometheus Operator would (Helm cannot upgrade objects of a kind it lost)."""
    crd = monitoring.service_monitor_crd()
    real_cluster.kubectl("apply", "--server-side", "-f", str(crd))
    real_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                         "crd/servicemonitors.monitoring.coreos.com")  # fmt: skip
    try:
        yield
    finally:
        real_cluster.helm("upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE,
                          "--reuse-values", "--set", "metrics.serviceMonitor.enabled=false",
                          check=False)  # fmt: skip
        real_cluster.kubectl("delete", "-f", str(crd), "--wait=false", check=False)


def _items(cluster: RealCluster, kind: str, *args: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("-n", NAMESPACE, "get", kind, *args, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _selector(selector: dict[str, Any]) -> str:
    terms = [f"{k}={v}" for k, v in selector.get("matchLabels", {}).items()]
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "DoesNotExist", expr
        terms.append(f"!{expr['key']}")
    return ",".join(terms)


def test_service_monitors_select_the_scraped_targets(
    real_cluster: RealCluster, release: str, prom: monitoring.PrometheusApi,
    service_monitor_crd: None,
) -> None:  # fmt: skip
    """With the Prometheus Operator's API present the chart adds ServiceMonitors; the
    endpoints they select are exactly the targets the annotations give Prometheus."""
    real_cluster.helm("upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values",
                      "--wait", "--timeout", "5m")  # fmt: skip
    monitors = _items(real_cluster, "servicemonitors")
    assert len(monitors) == 3, [m["metadata"]["name"] for m in monitors]
    selected = set()
    for monitor in monitors:
        (endpoint,) = monitor["spec"]["endpoints"]
        services = _items(real_cluster, "services", "-l", _selector(monitor["spec"]["selector"]))
        assert services, monitor["metadata"]["name"]
        for service in services:
            owner = f"kubernetes.io/service-name={service['metadata']['name']}"
            for piece in _items(real_cluster, "endpointslices", "-l", owner):
                port = next(p["port"] for p in piece["ports"] if p["name"] == endpoint["port"])
                for e in piece["endpoints"]:
                    selected |= {f"{a}:{port}{endpoint['path']}" for a in e["addresses"]}
    scraped = {
        t["scrapeUrl"].split("//", 1)[1]
        for t in prom.targets()
        if t["labels"].get("namespace") == NAMESPACE
    }
    assert len(scraped) == 6, scraped  # four examples, the operator, Restate
    assert selected == scraped


# ----------------------------------------------------------------------------- can fail


def test_with_policies_off_the_denied_connections_succeed(
    real_cluster: RealCluster, release: str, probes: dict[str, tuple[str, str]]
) -> None:
    """Every connection denied above opens with networkPolicy.enabled=false: the denials come
    from the policies, not from something else in the way. The policies are back (and deny
    again) at the end, so the module's tests do not depend on their order."""

    def upgrade(enabled: bool) -> None:
        real_cluster.helm(
            "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values",
            "--set", f"networkPolicy.enabled={str(enabled).lower()}", "--wait", "--timeout", "5m",
        )  # fmt: skip

    upgrade(False)
    try:
        for who, target, port in DENIED:
            namespace, pod = probes[who]
            assert reaches(real_cluster, namespace, pod, _svc(target), port, timeout=60)
    finally:
        upgrade(True)
    namespace, pod = probes["intruder"]
    assert denied(real_cluster, namespace, pod, _svc("restate"), 9070)
