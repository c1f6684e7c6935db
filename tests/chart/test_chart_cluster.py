"""The chart against a real API server (the ``kube`` fixture: kube-apiserver + kwok, no
kubelet): install, RBAC, the identity key pair kept across upgrades, uninstall.

No kubelet runs the keygen hook Job here, so the test installs with ``--no-hooks`` and plays
the Job itself: it applies the hook's own ServiceAccount/Role/RoleBinding, then runs the
Job's command (``python -m restate_operator.keygen ...``) locally with a kubeconfig of that
ServiceAccount, which also proves the hook's Role is enough (and limited).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.chartkit import (
    CHART,
    CRD_FILE,
    EXAMPLES,
    RFC8032_PEM,
    RFC8032_PUBLIC,
    Obj,
    PlayedHook,
)
from operator_tests.support import Operator

from restate_operator.keygen import public_key_id
from testkit.kube import Kube
from testkit.processes import wait_until

pytestmark = [
    pytest.mark.kube,
    pytest.mark.skipif(
        not CRD_FILE.exists(),
        reason=f"{CRD_FILE.relative_to(CHART)} is not written yet (the operator's CRD)",
    ),
]

RELEASE = "rx"
FULLNAME = f"{RELEASE}-restate-examples"
SECRET = f"{FULLNAME}-restate-identity"
CONFIGMAP = f"{FULLNAME}-restate-identity-public"


def get_json(kube: Kube, *args: str) -> Any:
    return json.loads(kube.kubectl("get", *args, "-o", "json").stdout)


def can_i(kube: Kube, kubeconfig: Path, namespace: str, *args: str) -> bool:
    proc = kube.kubectl("auth", "can-i", *args, "-n", namespace, kubeconfig=kubeconfig, check=False)
    return proc.stdout.strip() == "yes"


class KeygenHook(PlayedHook):
    """The keygen hook of one release: its RBAC applied, its Job's command run locally."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        super().__init__(kube, namespace, RELEASE, "templates/identity/keygen-hook.yaml")
        assert self.command[:3] == ["python", "-m", "restate_operator.keygen"]

    def run_keygen(self) -> str:
        return self.run_job().stderr


def key_pair(kube: Kube, namespace: str) -> tuple[Obj, Obj]:
    secret = get_json(kube, "secret", SECRET, "-n", namespace)
    configmap = get_json(kube, "configmap", CONFIGMAP, "-n", namespace)
    return secret, configmap


def test_install_upgrade_uninstall(kube: Kube, namespace: str) -> None:
    hook = KeygenHook(kube, namespace)

    # ---- install (the pre-install hook, played, then the release)
    assert "created" in hook.run_keygen()
    kube.helm("install", RELEASE, str(CHART), "--namespace", namespace, "--no-hooks")

    secret, configmap = key_pair(kube, namespace)
    pem = base64.b64decode(secret["data"]["private.pem"])
    assert configmap["data"]["publicKey"] == public_key_id(pem)

    deployments = get_json(kube, "deployments", "-n", namespace)["items"]
    assert {d["metadata"]["name"] for d in deployments} == {f"{FULLNAME}-operator"}
    sts = get_json(kube, "statefulset", f"{FULLNAME}-restate", "-n", namespace)
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.7.12")
    workloads = get_json(kube, "restateworkloads", "-n", namespace)["items"]
    assert sorted(w["metadata"]["name"] for w in workloads) == sorted(
        f"{FULLNAME}-{e}" for e in EXAMPLES
    )
    policies = get_json(kube, "networkpolicies", "-n", namespace)["items"]
    assert {p["metadata"]["name"] for p in policies} == {
        f"{FULLNAME}-examples",
        f"{FULLNAME}-restate",
        f"{FULLNAME}-operator",
    }

    # ---- RBAC: the operator's Role works and is limited; so is the keygen hook's
    operator_kc = kube.service_account_kubeconfig(namespace, f"{FULLNAME}-operator")
    for kind in ("restateregistrations", "restateworkloads"):
        resource = f"{kind}.examples.restate.dev"
        assert can_i(kube, operator_kc, namespace, "watch", resource)
        assert can_i(kube, operator_kc, namespace, "patch", resource, "--subresource=status")
        assert not can_i(kube, operator_kc, "default", "list", resource)
        assert not can_i(kube, operator_kc, namespace, "delete", resource)
    assert can_i(kube, operator_kc, namespace, "list", "services")
    assert can_i(kube, operator_kc, namespace, "create", "replicasets.apps")
    assert can_i(kube, operator_kc, namespace, "delete", "services")
    assert not can_i(kube, operator_kc, namespace, "create", "pods")
    assert not can_i(kube, operator_kc, namespace, "patch", "services")
    assert not can_i(kube, operator_kc, namespace, "create", "deployments.apps")
    assert not can_i(kube, operator_kc, namespace, "get", "secrets")
    assert can_i(kube, hook.kubeconfig, namespace, "get", f"secret/{SECRET}")
    assert not can_i(kube, hook.kubeconfig, namespace, "get", "secret/other")
    assert not can_i(kube, hook.kubeconfig, namespace, "list", "secrets")
    assert not can_i(kube, hook.kubeconfig, namespace, "delete", f"secret/{SECRET}")
    assert not can_i(kube, hook.kubeconfig, namespace, "patch", f"secret/{SECRET}")

    # ---- upgrade (the pre-upgrade hook, played, then the release): the key pair is kept
    assert "kept" in hook.run_keygen()
    kube.helm(
        "upgrade", RELEASE, str(CHART), "--namespace", namespace, "--no-hooks",
        "--set", "examples.userObject.replicas=2",
    )  # fmt: skip
    secret_after, configmap_after = key_pair(kube, namespace)
    assert secret_after["data"] == secret["data"]
    assert secret_after["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]
    assert configmap_after["data"] == configmap["data"]
    user_object = get_json(kube, "restateworkload", f"{FULLNAME}-user-object", "-n", namespace)
    assert user_object["spec"]["replicas"] == 2

    # ---- uninstall: every object of the release is gone; the key pair is kept on purpose
    hook.delete()
    kube.helm("uninstall", RELEASE, "--namespace", namespace)
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/managed-by=Helm"

    def nothing_left() -> bool:
        # Pods go a moment later: the garbage collector deletes them after their ReplicaSets.
        left = kube.kubectl(
            "get", "deployments,statefulsets,services,networkpolicies,roles,rolebindings,"
            "serviceaccounts,configmaps,secrets,restateworkloads,replicasets,jobs,pods",
            "-n", namespace, "-l", selector, "-o", "name",
        ).stdout  # fmt: skip
        return left.strip() == ""

    wait_until(nothing_left, 60, "every object of the release to be deleted")
    kept = key_pair(kube, namespace)
    assert kept[0]["data"] == secret["data"]


def test_install_with_identity_from_values(kube: Kube, namespace: str, tmp_path: Path) -> None:
    values = tmp_path / "identity.yaml"
    values.write_text(
        yaml.safe_dump({"identity": {"privateKeyPem": RFC8032_PEM, "publicKey": RFC8032_PUBLIC}})
    )
    kube.helm("install", RELEASE, str(CHART), "--namespace", namespace, "-f", str(values))
    configmap = get_json(
        kube, "configmap", f"{FULLNAME}-restate-identity-public-values", "-n", namespace
    )
    assert configmap["data"] == {"publicKey": RFC8032_PUBLIC}
    kube.helm("uninstall", RELEASE, "--namespace", namespace)


def test_uninstall_runs_the_finalizers_while_the_operator_is_alive(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """helm deletes the operator before the RestateWorkloads (kinds it does not know go
    last): the pre-delete cleanup hook deletes them first, while the operator runs; their
    ReplicaSets, Services and pods go with them."""
    values = tmp_path / "identity.yaml"
    values.write_text(
        yaml.safe_dump({"identity": {"privateKeyPem": RFC8032_PEM, "publicKey": RFC8032_PUBLIC}})
    )
    kube.helm("install", RELEASE, str(CHART), "--namespace", namespace, "-f", str(values))
    selector = f"app.kubernetes.io/instance={RELEASE}"

    def claim_owned_by_the_statefulset() -> bool:
        # The StatefulSet controller makes the claim, and, as its retention policy says,
        # hands it to the garbage collector with the StatefulSet.
        claims = get_json(kube, "pvc", "-n", namespace, "-l", selector)["items"]
        owners = [o["kind"] for c in claims for o in c["metadata"].get("ownerReferences", [])]
        return owners == ["StatefulSet"]

    wait_until(claim_owned_by_the_statefulset, 30, "Restate's claim, owned by the StatefulSet")

    # The operator as the chart's ServiceAccount (kwok runs no container: a local process).
    # Restate is unreachable here, so nothing is registered: the finalizer has nothing to drain;
    # but each example's first version (ReplicaSet, Service, pods) is made.
    operator_kc = kube.service_account_kubeconfig(namespace, f"{FULLNAME}-operator")
    operator = Operator(operator_kc, namespace, "http://127.0.0.1:1", tmp_path)
    operator.start()
    try:

        def finalized() -> bool:
            items = get_json(kube, "restateworkloads", "-n", namespace)["items"]
            return len(items) == 4 and all(
                "examples.restate.dev/registration" in (i["metadata"].get("finalizers") or [])
                for i in items
            )

        wait_until(finalized, 60, "the operator's finalizer on the four workloads")
        versions = f"{selector},app.kubernetes.io/component=example-service"
        wait_until(
            lambda: (
                len(get_json(kube, "replicasets", "-n", namespace, "-l", versions)["items"]) == 4
            ),
            60,
            "each example's first version",
        )
        # A failed helm test pod: Helm leaves it behind, the hook deletes it.
        kube.kubectl(
            "run", f"{FULLNAME}-test-examples", "-n", namespace, "--restart=Never",
            "--image=registry.k8s.io/pause:3.10",
        )  # fmt: skip
        kube.kubectl("run", "unrelated", "-n", namespace, "--image=registry.k8s.io/pause:3.10")

        hook = PlayedHook(kube, namespace, RELEASE, "templates/operator/cleanup-hook.yaml")
        log = hook.run_job(timeout=120).stderr
        assert "removed their finalizers" not in log, log  # the operator ran them
        assert get_json(kube, "restateworkloads", "-n", namespace)["items"] == []
        pods = get_json(kube, "pods", "-n", namespace)["items"]
        test_pod = [p for p in pods if p["metadata"]["name"] == f"{FULLNAME}-test-examples"]
        assert all(p["metadata"].get("deletionTimestamp") for p in test_pod)
        assert "unrelated" in {p["metadata"]["name"] for p in pods}
        assert not can_i(kube, hook.kubeconfig, namespace, "delete", "pod/unrelated")
        assert not can_i(kube, hook.kubeconfig, namespace, "get", "restateregistrations")
        assert not can_i(kube, hook.kubeconfig, namespace, "get", "restateworkloads")
        hook.delete()
    finally:
        operator.stop()  # what helm does next

    kube.helm("uninstall", RELEASE, "--namespace", namespace, "--no-hooks", "--wait")

    def nothing_left() -> bool:
        left = kube.kubectl(
            "get", "all,pvc,restateworkloads,networkpolicies,roles,rolebindings,"
            "serviceaccounts,configmaps,secrets",
            "-n", namespace, "-l", selector, "-o", "name",
        ).stdout  # fmt: skip
        return left.strip() == ""

    # The volume too: the StatefulSet's retention policy hands it to the garbage collector.
    wait_until(nothing_left, 60, "every object of the release, and Restate's volume, to go")
