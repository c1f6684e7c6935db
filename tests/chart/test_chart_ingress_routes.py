"""The chart's ways in from outside, rendered by helm: the Ingress and the Gateway API
HTTPRoute reach Restate's ingress port (8080) only, with the chart's standard labels;
``networkPolicy.ingressFrom`` admits the controller's peers to 8080 and nothing else; values
the schema rejects name the field. (Through a real controller: tests/e2e/test_ingress.py.)"""

from __future__ import annotations

import pytest
from chart.chartkit import FULLNAME, Helm, Obj, named, of_kind

ROUTE = {
    "restate": {
        "httpRoute": {
            "enabled": True,
            "annotations": {"team": "platform"},
            "parentRefs": [{"name": "gw", "namespace": "edge", "sectionName": "https"}],
            "hostnames": ["restate.example.local"],
        }
    }
}
CONTROLLER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}


def test_no_route_by_default(helm: Helm) -> None:
    assert not of_kind(helm.template(), "HTTPRoute")


def test_http_route_reaches_only_the_ingress_port(helm: Helm) -> None:
    (route,) = of_kind(helm.template(values=ROUTE), "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["name"] == f"{FULLNAME}-restate"
    labels = route["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "restate-server"
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert route["metadata"]["annotations"] == {"team": "platform"}
    spec = route["spec"]
    assert spec["parentRefs"] == [{"name": "gw", "namespace": "edge", "sectionName": "https"}]
    assert spec["hostnames"] == ["restate.example.local"]
    backends = [b for rule in spec["rules"] for b in rule["backendRefs"]]
    assert backends == [{"name": f"{FULLNAME}-restate", "port": 8080}]


def test_route_without_hostnames_has_none(helm: Helm) -> None:
    values = {"restate": {"httpRoute": {"enabled": True, "parentRefs": [{"name": "gw"}]}}}
    (route,) = of_kind(helm.template(values=values), "HTTPRoute")
    assert "hostnames" not in route["spec"]


def _ingress_rules(objects: list[Obj]) -> list[Obj]:
    restate = named(objects, "NetworkPolicy", f"{FULLNAME}-restate")
    rules: list[Obj] = restate["spec"]["ingress"]
    return rules


def test_ingress_from_admits_the_controller_to_8080_only(helm: Helm) -> None:
    objects = helm.template(values={"networkPolicy": {"ingressFrom": [CONTROLLER]}})
    rules = _ingress_rules(objects)
    (public,) = [r for r in rules if r["ports"] == [{"protocol": "TCP", "port": 8080}]]
    release = {"app.kubernetes.io/name": "restate-examples", "app.kubernetes.io/instance": "demo"}
    # The controller, and this release's own pods (the examples and helm test call 8080).
    assert public["from"] == [CONTROLLER, {"podSelector": {"matchLabels": release}}]
    # Nowhere else: no other port of Restate, nor of the services, admits the controller.
    others = [r for r in rules if r is not public]
    examples = named(objects, "NetworkPolicy", f"{FULLNAME}-examples")["spec"]["ingress"]
    assert all(CONTROLLER not in r.get("from", []) for r in others + examples)


def test_ingress_port_open_to_all_without_ingress_from(helm: Helm) -> None:
    rules = _ingress_rules(helm.template())
    assert {"ports": [{"protocol": "TCP", "port": 8080}]} in rules


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"restate": {"httpRoute": {"enabled": True}}}, "/restate/httpRoute/parentRefs"),
        (
            {"restate": {"httpRoute": {"parentRefs": [{"namespace": "edge"}]}}},
            "/restate/httpRoute/parentRefs/0",
        ),
        (
            {"restate": {"httpRoute": {"parentRefs": [{"name": "gw", "port": 70000}]}}},
            "/restate/httpRoute/parentRefs/0/port",
        ),
        (
            {"restate": {"httpRoute": {"hostnames": ["Not_A_Host"]}}},
            "/restate/httpRoute/hostnames/0",
        ),
        ({"restate": {"httpRoute": {"backend": "admin"}}}, "backend"),
        ({"networkPolicy": {"ingressFrom": [{"namespace": "traefik"}]}}, "ingressFrom"),
    ],
)
def test_schema_rejects(helm: Helm, values: dict[str, object], expected: str) -> None:
    error = helm.template_error(values=values)
    assert "values don't meet the specifications of the schema" in error, error
    assert expected in error, error
