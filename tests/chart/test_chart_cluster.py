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
import os
import subprocess
import sys
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
    of_kind,
    parse_manifests,
)

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
OPERATOR_PATH = Path(__file__).resolve().parents[2] / "operator"


def get_json(kube: Kube, *args: str) -> Any:
    return json.loads(kube.kubectl("get", *args, "-o", "json").stdout)


def can_i(kube: Kube, kubeconfig: Path, namespace: str, *args: str) -> bool:
    proc = kube.kubectl("auth", "can-i", *args, "-n", namespace, kubeconfig=kubeconfig, check=False)
    return proc.stdout.strip() == "yes"


class KeygenHook:
    """The keygen hook of one release: its RBAC applied, its Job's command run locally."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        rendered = kube.helm(
            "template", RELEASE, str(CHART), "--namespace", namespace,
            "--show-only", "templates/identity/keygen-hook.yaml",
        ).stdout  # fmt: skip
        objects = parse_manifests(rendered)
        (job,) = of_kind(objects, "Job")
        self.command: list[str] = job["spec"]["template"]["spec"]["containers"][0]["command"]
        self.service_account: str = job["spec"]["template"]["spec"]["serviceAccountName"]
        self.rbac = [o for o in objects if o["kind"] != "Job"]
        for obj in self.rbac:  # hooks are not part of the release: strip helm's annotations
            obj["metadata"].pop("annotations", None)
        kube.kubectl(
            "apply", "-n", namespace, "-f", "-", input=json.dumps({"kind": "List",
            "apiVersion": "v1", "items": self.rbac}),
        )  # fmt: skip
        self.kubeconfig = kube.service_account_kubeconfig(namespace, self.service_account)

    def run_job(self) -> str:
        assert self.command[:3] == ["python", "-m", "restate_operator.keygen"]
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(OPERATOR_PATH), os.environ.get("PYTHONPATH")])
            ),
        }
        proc = subprocess.run(
            [sys.executable, *self.command[1:]],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    def delete(self) -> None:
        """What the hook-succeeded delete policy does after the Job."""
        for obj in self.rbac:
            kind, name = obj["kind"].lower(), obj["metadata"]["name"]
            self.kube.kubectl("delete", "-n", self.namespace, f"{kind}/{name}", "--wait")


def key_pair(kube: Kube, namespace: str) -> tuple[Obj, Obj]:
    secret = get_json(kube, "secret", SECRET, "-n", namespace)
    configmap = get_json(kube, "configmap", CONFIGMAP, "-n", namespace)
    return secret, configmap


def test_install_upgrade_uninstall(kube: Kube, namespace: str) -> None:
    hook = KeygenHook(kube, namespace)

    # ---- install (the pre-install hook, played, then the release)
    assert "created" in hook.run_job()
    kube.helm("install", RELEASE, str(CHART), "--namespace", namespace, "--no-hooks")

    secret, configmap = key_pair(kube, namespace)
    pem = base64.b64decode(secret["data"]["private.pem"])
    assert configmap["data"]["publicKey"] == public_key_id(pem)

    deployments = get_json(kube, "deployments", "-n", namespace)["items"]
    assert {d["metadata"]["name"] for d in deployments} == (
        {f"{FULLNAME}-{e}" for e in EXAMPLES} | {f"{FULLNAME}-operator"}
    )
    sts = get_json(kube, "statefulset", f"{FULLNAME}-restate", "-n", namespace)
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.7.12")
    registrations = get_json(kube, "restateregistrations", "-n", namespace)["items"]
    assert sorted(r["spec"]["service"]["name"] for r in registrations) == sorted(
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
    assert can_i(kube, operator_kc, namespace, "watch", "restateregistrations.examples.restate.dev")
    assert can_i(
        kube,
        operator_kc,
        namespace,
        "patch",
        "restateregistrations.examples.restate.dev",
        "--subresource=status",
    )
    assert can_i(kube, operator_kc, namespace, "list", "services")
    assert not can_i(kube, operator_kc, namespace, "get", "secrets")
    assert not can_i(
        kube, operator_kc, "default", "list", "restateregistrations.examples.restate.dev"
    )
    assert can_i(kube, hook.kubeconfig, namespace, "get", f"secret/{SECRET}")
    assert not can_i(kube, hook.kubeconfig, namespace, "get", "secret/other")
    assert not can_i(kube, hook.kubeconfig, namespace, "list", "secrets")
    assert not can_i(kube, hook.kubeconfig, namespace, "delete", f"secret/{SECRET}")
    assert not can_i(kube, hook.kubeconfig, namespace, "patch", f"secret/{SECRET}")

    # ---- upgrade (the pre-upgrade hook, played, then the release): the key pair is kept
    assert "kept" in hook.run_job()
    kube.helm(
        "upgrade", RELEASE, str(CHART), "--namespace", namespace, "--no-hooks",
        "--set", "examples.userObject.replicas=2",
    )  # fmt: skip
    secret_after, configmap_after = key_pair(kube, namespace)
    assert secret_after["data"] == secret["data"]
    assert secret_after["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]
    assert configmap_after["data"] == configmap["data"]
    user_object = get_json(kube, "deployment", f"{FULLNAME}-user-object", "-n", namespace)
    assert user_object["spec"]["replicas"] == 2

    # ---- uninstall: every object of the release is gone; the key pair is kept on purpose
    hook.delete()
    kube.helm("uninstall", RELEASE, "--namespace", namespace)
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/managed-by=Helm"

    def nothing_left() -> bool:
        # Pods go a moment later: the garbage collector deletes them after their ReplicaSets.
        left = kube.kubectl(
            "get", "deployments,statefulsets,services,networkpolicies,roles,rolebindings,"
            "serviceaccounts,configmaps,secrets,restateregistrations,jobs,pods",
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
