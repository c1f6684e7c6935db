"""The chart's pre-upgrade CRD hook (`python -m restate_operator.crds`) against the real API
server: an older RestateWorkload CRD without `revisionHistoryLimit` prunes the field; the hook,
run with exactly the rights the chart gives it (its ClusterRole, rendered by helm), applies the
current CRDs; the field is then kept."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_tests.support import CHART, WORKLOAD_CRD, workload_template

from testkit.kube import Kube

pytestmark = pytest.mark.kube
NAME = "restateworkloads.examples.restate.dev"


def older_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(WORKLOAD_CRD.read_text())
    old = copy.deepcopy(crd)
    spec = old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"]["revisionHistoryLimit"]
    return old


def stored_limit(kube: Kube, namespace: str, name: str) -> Any:
    out = kube.kubectl("get", "rwl", name, "-n", namespace, "-o", "json").stdout
    return json.loads(out)["spec"].get("revisionHistoryLimit")


def create(kube: Kube, namespace: str, name: str) -> None:
    spec = {"selector": {"matchLabels": {"app": name}}, "template": workload_template(name, "v1"),
            "revisionHistoryLimit": 3}  # fmt: skip
    body = {"apiVersion": "examples.restate.dev/v1alpha1", "kind": "RestateWorkload",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}  # fmt: skip
    # As Helm applies it: an unknown field is pruned by the API server, not refused.
    kube.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(body))


def hook_identity(kube: Kube, namespace: str, tmp: Path) -> Path:
    """The hook's ServiceAccount, ClusterRole and binding as the chart renders them."""
    hook = "templates/operator/crd-upgrade-hook.yaml"
    rendered = kube.helm(
        "template", "demo", str(CHART), "--namespace", namespace, "--show-only", hook
    ).stdout
    wanted = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    objects = [o for o in yaml.safe_load_all(rendered) if o and o["kind"] in wanted]
    assert sorted(o["kind"] for o in objects) == sorted(wanted)
    for obj in objects:
        obj["metadata"].pop("annotations", None)  # not as hooks here
    listed = {"apiVersion": "v1", "kind": "List", "items": objects}
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(listed))
    sa = next(o for o in objects if o["kind"] == "ServiceAccount")["metadata"]["name"]
    return kube.service_account_kubeconfig(namespace, sa)


def test_the_hook_applies_the_new_crd_and_the_new_field_is_kept(
    kube: Kube, crd: Path, namespace: str, tmp_path: Path
) -> None:
    # An older CRD, as an earlier chart installed it: the new field is pruned on write.
    kube.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=helm",
                 "-f", "-", input=json.dumps(older_crd()))  # fmt: skip
    try:
        create(kube, namespace, "before")
        assert stored_limit(kube, namespace, "before") is None  # pruned

        kubeconfig = hook_identity(kube, namespace, tmp_path)
        run = subprocess.run(
            [sys.executable, "-m", "restate_operator.crds", str(CHART / "crds")],
            env={"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert f"{NAME} Established" in run.stdout
        create(kube, namespace, "after")
        assert stored_limit(kube, namespace, "after") == 3  # kept
        create(kube, namespace, "before")  # what `helm upgrade` applies next
        assert stored_limit(kube, namespace, "before") == 3
    finally:  # the current CRD for the other tests, whatever happened
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(WORKLOAD_CRD))
