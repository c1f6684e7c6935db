"""The chart on the Kubernetes versions it declares (Chart.yaml ``kubeVersion``): rendered for,
and accepted by (server-side dry-run: every schema and admission check of a real API server),
the oldest and the newest release of that range, each a real kube-apiserver built from its own
Kubernetes modules (``localcluster/tools/versions.env``: KUBE_OLDEST_VERSION, KUBE_VERSION)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import yaml
from chart.chartkit import CHART, NAMESPACE, RELEASE, Helm, Obj

from localcluster.controlplane import ControlPlane, KubeStartupError, resolve_bin_dir
from testkit.kube import Kube
from testkit.tiers import pinned_versions

# The oldest kube-apiserver is built last, after the control plane the other chart tests use.
pytestmark = pytest.mark.whole_build

# The only shape of range the chart declares: from a first minor up to (not including) another.
RANGE = re.compile(r"^>=\s*1\.(\d+)\.0-0\s+<\s*1\.(\d+)\.0-0$")
# Each end of the range: the API server binary (localcluster/tools/build.sh) and its version.
ENDS = {
    "oldest": ("kube-apiserver-oldest", "KUBE_OLDEST_VERSION"),
    "newest": ("kube-apiserver", "KUBE_VERSION"),
}
SWITCHES = [
    [],
    ["restate.replicated.enabled=true"],
    ["restate.ingress.enabled=true"],
    ["examples.defaults.autoscaling.enabled=true"],
    ["networkPolicy.enabled=false", "identity.enabled=false", "operator.enabled=false"],
]


def supported_minors() -> tuple[int, int]:
    """(oldest, newest) minor of Kubernetes 1.x the chart declares it supports."""
    declared = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    m = RANGE.match(declared)
    assert m, f"kubeVersion {declared!r} is not of the form '>= 1.A.0-0 < 1.B.0-0'"
    return int(m[1]), int(m[2]) - 1


def minor_of(version: str) -> int:
    m = re.match(r"^v1\.(\d+)\.\d+$", version)
    assert m, version
    return int(m[1])


@pytest.fixture(scope="module", params=sorted(ENDS))
def api_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Kube]]:
    """(end of the range, a Kube on etcd + that end's kube-apiserver alone)."""
    end: str = request.param
    binary = ENDS[end][0]
    try:
        bin_dir = resolve_bin_dir()
    except KubeStartupError as e:
        pytest.fail(str(e), pytrace=False)
    workdir = tmp_path_factory.mktemp(f"kube-{end}")
    cp = ControlPlane(bin_dir, workdir / "controlplane", apiserver=binary, api_only=True)
    with cp:
        kube = Kube(kubeconfig=cp.kubeconfig, bin_dir=bin_dir, workdir=workdir, control_plane=cp)
        yield end, kube


def server_version(kube: Kube) -> str:
    version: str = json.loads(kube.kubectl("get", "--raw", "/version").stdout)["gitVersion"]
    return version


def test_range_ends_are_the_servers_tested(api_server: tuple[str, Kube]) -> None:
    """The range's oldest and newest minor are the API servers these tests run, which report
    exactly the pinned release (bumping versions.env without the chart, or back, fails)."""
    end, kube = api_server
    oldest, newest = supported_minors()
    expected = pinned_versions()[ENDS[end][1]]
    assert server_version(kube) == expected
    assert minor_of(expected) == {"oldest": oldest, "newest": newest}[end]


@pytest.mark.parametrize("sets", SWITCHES, ids=lambda s: ",".join(s) or "defaults")
def test_rendered_chart_accepted_by_the_api_server(
    api_server: tuple[str, Kube], helm: Helm, sets: list[str]
) -> None:
    """Rendered for that server's version, every object (hooks and test Pod included) passes
    its server-side dry-run: no field, API version or value it rejects."""
    _, kube = api_server
    version = server_version(kube)
    objects = helm.template(*sets, extra=["--kube-version", version])
    assert len(objects) > 5, objects
    _prepare_namespace(kube, NAMESPACE, objects)
    items = {"apiVersion": "v1", "kind": "List", "items": objects}
    proc = kube.kubectl(
        "apply", "--dry-run=server", "-n", NAMESPACE, "-o", "name", "-f", "-",
        input=json.dumps(items), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    accepted = proc.stdout.split()
    assert len(accepted) == len(objects), (accepted, [o["kind"] for o in objects])


def test_helm_install_checks_the_servers_version(api_server: tuple[str, Kube]) -> None:
    """helm reads the real server's version and finds it in the chart's range."""
    _, kube = api_server
    namespace = "helm-install"  # none of the dry-run tests' real ServiceAccounts in it
    _prepare_namespace(kube, namespace, [])
    proc = kube.helm(
        "install", RELEASE, str(CHART), "-n", namespace, "--dry-run=server", check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert f"NAMESPACE: {namespace}" in proc.stdout, proc.stdout


@pytest.mark.parametrize("side", ["below", "above"])
def test_versions_outside_the_range_refused(helm: Helm, side: str) -> None:
    oldest, newest = supported_minors()
    version = f"v1.{oldest - 1}.0" if side == "below" else f"v1.{newest + 1}.0"
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", version]
    proc = helm.run(*args, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "is incompatible with Kubernetes" in proc.stderr, proc.stderr


def _prepare_namespace(kube: Kube, namespace: str, objects: list[Obj]) -> None:
    """What must exist for real before a dry-run of the rest: the namespace, the chart's CRDs
    (established), and the ServiceAccounts Pods name (admission looks them up; no controller
    manager runs here to make ``default``)."""
    kube.kubectl("create", "namespace", namespace, check=False)
    kube.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    kube.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    accounts = {"default"} | {
        o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"
    }
    for name in sorted(accounts):
        proc = kube.kubectl("create", "serviceaccount", name, "-n", namespace, check=False)
        assert proc.returncode == 0 or "already exists" in proc.stderr, proc.stderr
