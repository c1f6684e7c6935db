"""Restate's ingress from outside the cluster, through a real ingress controller: the chart's
Ingress and its Gateway API HTTPRoute, served by Traefik (built from its Go module, run as a
pod of its own namespace: ``localcluster.ingress``), on real pods.

Every request of the README goes to the controller's address with the route's host in the
``Host`` header, through the Ingress and through the HTTPRoute; over TLS with a certificate
of the test CA (``localcluster.pki``), verified against that CA. The admin API and the
services' endpoints are not reachable through either; ``networkPolicy.ingressFrom`` admits
the controller's namespace to Restate's ingress port and nowhere else; with the ingress off,
the controller serves nothing of Restate. One install for the module.

On kind or a given kubeconfig the tests need a controller the suite knows how to drive; there
is none, so they are skipped with that reason (the local node starts its own).
"""

from __future__ import annotations

import json
import re
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.pods import awakeable_for, example_image, installed, probe_pod
from e2e.test_policies_and_metrics import connect, denied, reaches

from localcluster import ingress
from localcluster.controlplane import REPO_ROOT
from localcluster.pki import CertificateAuthority
from plugins.real_cluster import RealCluster
from testkit.processes import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

NAMESPACE = "rx-ingress"
RELEASE = "restate-examples"
FULLNAME = RELEASE
CHART = REPO_ROOT / "deploy" / "helm" / "restate-examples"
INGRESS_HOST = "restate.example.local"  # the Ingress's host
ROUTE_HOST = "restate-gw.example.local"  # the HTTPRoute's hostname
INGRESS_TLS_SECRET = "restate-ingress-tls"
CONTROLLER_NAMESPACE_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ingress.NAMESPACE}}
}


@dataclass(frozen=True)
class Edge:
    controller: ingress.Controller
    ca: Path
    """The test CA's certificate: what the TLS requests verify against."""
    issuer: CertificateAuthority


@pytest.fixture(scope="module")
def edge(real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    if real_cluster.provider != "local-node":
        pytest.skip(
            f"no ingress controller the tests can drive on this {real_cluster.provider} "
            "cluster: they start Traefik on the local node only"
        )
    ca = CertificateAuthority(tmp_path_factory.mktemp("ingress-pki"))
    gateway_cert = ca.issue("gateway", common_name=ROUTE_HOST, dns_names=(ROUTE_HOST,), server=True)
    t0 = time.monotonic()
    controller = ingress.deploy(real_cluster.kubeconfig, gateway_cert)
    print(f"\nTraefik {controller.version} at {controller.address}: {time.monotonic() - t0:.1f} s")
    try:
        yield Edge(controller, ca.cert, ca)
    finally:
        ingress.remove(real_cluster.kubeconfig)


def _values(on: bool) -> dict[str, Any]:
    return {
        "restate": {
            "ingress": {
                "enabled": on,
                "className": ingress.INGRESS_CLASS,
                "hosts": [{"host": INGRESS_HOST, "paths": [{"path": "/", "pathType": "Prefix"}]}],
                "tls": [{"secretName": INGRESS_TLS_SECRET, "hosts": [INGRESS_HOST]}],
            },
            "httpRoute": {
                "enabled": on,
                "parentRefs": [{"name": ingress.GATEWAY, "namespace": ingress.NAMESPACE}],
                "hostnames": [ROUTE_HOST],
            },
        },
        "networkPolicy": {"ingressFrom": [CONTROLLER_NAMESPACE_PEER]},
        "examples": {"buildingBlocks": {"sleepSeconds": 1, "cancelDelaySeconds": 5}},
    }


@pytest.fixture(scope="module")
def release(
    real_cluster: RealCluster, edge: Edge, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("ingress-release")
    cert = edge.issuer.issue("ingress", common_name=INGRESS_HOST, dns_names=(INGRESS_HOST,),
                             server=True)  # fmt: skip
    for obj in (["namespace", NAMESPACE],
                ["-n", NAMESPACE, "secret", "tls", INGRESS_TLS_SECRET, f"--cert={cert.cert}",
                 f"--key={cert.key}"]):  # fmt: skip
        manifest = real_cluster.kubectl("create", *obj, "--dry-run=client", "-o", "json")
        real_cluster.kubectl("apply", "-f", "-", input=manifest)
    values = workdir / "values.json"
    values.write_text(json.dumps(_values(True)))
    with installed(real_cluster, RELEASE, NAMESPACE, "--values", str(values)) as namespace:
        yield namespace


VIAS = ("ingress", "httproute")


def _host(via: str) -> str:
    return INGRESS_HOST if via == "ingress" else ROUTE_HOST


def _client(edge: Edge, via: str, *, tls: bool = False) -> httpx.Client:
    """A client of the controller's address that names the route's host: in ``Host`` (and,
    over TLS, as the SNI name the certificate is verified for, against the test CA only)."""
    host = _host(via)
    if not tls:
        return httpx.Client(base_url=edge.controller.http, headers={"host": host}, timeout=120)
    context = ssl.create_default_context(cafile=str(edge.ca))
    return httpx.Client(
        base_url=edge.controller.https, headers={"host": host}, timeout=120, verify=context
    )


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    sni = client.headers["host"]
    return client.request(method, path, extensions={"sni_hostname": sni}, **kwargs)


@pytest.fixture(scope="module")
def routed(edge: Edge, release: str) -> None:
    """Both routes serve (the controller picks new objects up a moment after they exist)."""
    for via in VIAS:
        for tls in (False, True):
            with _client(edge, via, tls=tls) as client:
                eventually(
                    lambda c=client: _request(c, "GET", "/restate/health").status_code == 200,  # type: ignore[misc]
                    60,
                    f"Restate's /restate/health through the {via} (tls={tls})",
                    interval=1,
                )


def _logs(cluster: RealCluster, example: str) -> str:
    selector = f"examples.restate.dev/workload={FULLNAME}-{example}"
    return cluster.kubectl("-n", NAMESPACE, "logs", "-l", selector, "--tail=-1")


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("via", VIAS)
def test_every_readme_request(
    real_cluster: RealCluster, edge: Edge, routed: None, via: str, tls: bool
) -> None:
    tag = f"{via[:3]}{'s' if tls else ''}-{uuid.uuid4().hex[:6]}"
    with _client(edge, via, tls=tls) as c:
        # Virtual objects.
        mary, barack = f"mary-{tag}", f"barack-{tag}"
        assert _request(c, "POST", f"/GreeterObject/{mary}/greet", json="Hi").json() == (
            f"Hi {mary} for the 1-th time."
        )
        assert _request(c, "POST", f"/GreeterObject/{barack}/greet", json="Hello").json() == (
            f"Hello {barack} for the 1-th time."
        )
        assert _request(c, "POST", f"/GreeterObject/{mary}/ungreet").json() == (
            f"Dear {mary}, taking one greeting back: 0."
        )
        # Durable execution.
        body = {"userId": f"Sam Beckett {tag}", "creditCard": "1234-5678-9012-3456",
                "subscriptions": ["Netflix", "Disney+", "HBO Max"]}  # fmt: skip
        added = _request(c, "POST", "/SubscriptionService/add", json=body)
        assert added.status_code == 200, added.text
        assert added.text in ("", "null")
        # Workflows: run/send, the secret from the "email" in the log, click, attach.
        user = f"userid-{tag}"
        sent = _request(c, "POST", f"/SignupWorkflow/{user}/run/send",
                        json={"name": "Bob", "email": "bob@builder.com"})  # fmt: skip
        assert sent.status_code in (200, 202), sent.text
        pattern = re.compile(rf"/verify/{user}\?secret=([0-9a-zA-Z-]+)")
        secret = eventually(
            lambda: m.group(1) if (m := pattern.search(_logs(real_cluster, "signup-workflow")))
            else None,
            60,
            "the verification email in the signup-workflow log",
        )  # fmt: skip
        assert _request(c, "POST", f"/SignupWorkflow/{user}/click", json=secret).status_code == 200
        attached = _request(c, "GET", f"/restate/workflow/SignupWorkflow/{user}/attach")
        assert attached.json() is True
        # Durable building blocks: run (send), resolve its awakeable, attach to the result.
        run = _request(c, "POST", "/MyService/run/send", headers={"idempotency-key": tag})
        assert run.status_code in (200, 202), run.text
        invocation = run.json()["invocationId"]
        awakeable = awakeable_for(real_cluster, NAMESPACE, FULLNAME, invocation)
        resolved = _request(c, "POST", f"/restate/awakeables/{awakeable}/resolve", json="hello")
        assert resolved.status_code in (200, 202), resolved.text
        result = _request(c, "GET", f"/restate/invocation/{invocation}/attach").json()
        assert result == {"rpcResult": "SUCCESS", "greeting": "hello", "charged": True}


def test_tls_is_verified_against_the_test_ca(edge: Edge, routed: None) -> None:
    """Each route's certificate is the test CA's, for its host: another CA, or another name,
    fails verification."""
    for via in VIAS:
        with _client(edge, via, tls=True) as client:
            tls = _request(client, "GET", "/restate/health")
            assert tls.status_code == 200
        host = _host(via)
        other = CertificateAuthority(edge.ca.parent / f"other-{via}")
        strangers = [
            (ssl.create_default_context(cafile=str(other.cert)), host),  # another CA
            (ssl.create_default_context(cafile=str(edge.ca)), f"other.{host}"),  # another name
        ]
        for context, sni in strangers:
            with (
                httpx.Client(base_url=edge.controller.https, verify=context, timeout=30) as c,
                pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
            ):
                c.get("/restate/health", headers={"host": host}, extensions={"sni_hostname": sni})


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("via", VIAS)
def test_admin_api_and_service_endpoints_not_reachable(
    edge: Edge, routed: None, via: str, tls: bool
) -> None:
    """Only Restate's ingress is behind the routes: the admin API's /deployments (which lists
    the registered deployments) and a service's /discover get the ingress's refusal, never
    what the admin API or a service would send."""
    with _client(edge, via, tls=tls) as c:
        for path in ("/deployments", "/discover"):
            answer = _request(c, "GET", path)
            # Restate's ingress refuses a path that names no handler (4xx).
            assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
            assert not _admin_or_service_answer(answer), (path, answer.text)
        # The same request reaches a service through Restate (the route is live).
        assert _request(c, "GET", "/restate/health").status_code == 200


def _admin_or_service_answer(answer: httpx.Response) -> bool:
    """The admin API's deployment list, or a service's discovery manifest."""
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool({"deployments", "services", "protocolMode"} & set(body))


def _probe_pod(cluster: RealCluster, namespace: str, name: str) -> str:
    return probe_pod(cluster, namespace, name, example_image(cluster, NAMESPACE))


def _svc(name: str) -> str:
    return f"{FULLNAME}-{name}.{NAMESPACE}.svc.cluster.local"


def test_controller_namespace_reaches_only_the_ingress_port(
    real_cluster: RealCluster, release: str, edge: Edge
) -> None:
    """networkPolicy.ingressFrom: a pod of the controller's namespace reaches Restate's 8080
    and nothing else; a pod elsewhere (not the release's) no longer reaches 8080."""
    ns = edge.controller.namespace
    beside = _probe_pod(real_cluster, ns, "beside-the-controller")
    outsider = _probe_pod(real_cluster, NAMESPACE, "outsider")
    try:
        assert reaches(real_cluster, ns, beside, _svc("restate"), 8080)
        assert denied(real_cluster, ns, beside, _svc("restate"), 9070)
        assert denied(real_cluster, ns, beside, _svc("user-object"), 9080)
        assert denied(real_cluster, NAMESPACE, outsider, _svc("restate"), 8080)
        # The outsider's probe works (not a fault of the probe): it resolves and connects to
        # the controller's own pod.
        assert connect(real_cluster, NAMESPACE, outsider, edge.controller.address,
                       ingress.HTTP_PORT) == "open"  # fmt: skip
    finally:
        real_cluster.kubectl("-n", ns, "delete", "pod", beside, "--wait=false", check=False)
        real_cluster.kubectl("-n", NAMESPACE, "delete", "pod", outsider, "--wait=false",
                             check=False)  # fmt: skip


def test_with_the_ingress_off_nothing_is_exposed(
    real_cluster: RealCluster, edge: Edge, release: str, routed: None,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Last (it switches both routes off): the controller then serves nothing of Restate."""
    values = tmp_path / "off.json"
    values.write_text(json.dumps(_values(False)))
    real_cluster.helm("upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values",
                      "--values", str(values), "--wait")  # fmt: skip
    kinds = real_cluster.kubectl("-n", NAMESPACE, "get", "ingresses,httproutes", "-o", "name")
    assert kinds.strip() == ""
    for via in VIAS:
        with _client(edge, via) as c:
            eventually(
                lambda cl=c: _request(cl, "GET", "/restate/health").status_code == 404,  # type: ignore[misc]
                60,
                f"the {via} gone from the controller",
                interval=1,
            )
            for path in ("/restate/health", "/GreeterObject/mary/greet", "/deployments"):
                answer = _request(c, "POST" if "Greeter" in path else "GET", path, json="Hi")
                assert answer.status_code == 404, (via, path, answer.text)
                assert answer.text.strip() == "404 page not found", answer.text  # Traefik's own
