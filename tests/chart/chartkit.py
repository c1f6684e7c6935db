"""Helpers for the chart tests: find helm, render the chart, look objects up."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import catalog
import pytest
import yaml

from testkit.kube import CONTROL_PLANE_STAGE, Kube, KubeStartupError, resolve_bin_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATOR_PATH = REPO_ROOT / "operator"
# RESTATE_EXAMPLES_CHART: test another copy of the chart (e.g. with a CRD not yet committed).
CHART = Path(
    os.environ.get("RESTATE_EXAMPLES_CHART") or REPO_ROOT / "deploy" / "helm" / "restate-examples"
)
CRD_FILE = CHART / "crds" / "restateregistrations.yaml"
WORKLOAD_CRD_FILE = CHART / "crds" / "restateworkloads.yaml"
RELEASE = "demo"
NAMESPACE = "examples"
FULLNAME = f"{RELEASE}-restate-examples"
EXAMPLES = tuple(e.name for e in catalog.EXAMPLES)
# Dockerfile targets (= image names after "restate-examples-") and their key in values.yaml.
TARGETS = tuple(catalog.IMAGE_VALUES)
VALUE_KEYS = catalog.IMAGE_VALUES

Obj = dict[str, Any]

# RFC 8032 TEST 1 key; restate-server 1.7.12 logs this publickeyv1_ id for it.
RFC8032_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n"
)
RFC8032_PUBLIC = "publickeyv1_FVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z"


def find_helm() -> Path | None:
    """helm from the test control plane's build (localcluster/tools/build.sh), else $PATH."""
    candidates: list[Path] = []
    with contextlib.suppress(KubeStartupError):  # not built: try $PATH
        candidates.append(resolve_bin_dir(stage=CONTROL_PLANE_STAGE) / "helm")
    on_path = shutil.which("helm")
    if on_path:
        candidates.append(Path(on_path))
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def require_helm() -> Path:
    helm = find_helm()
    if helm is None:
        reason = "helm is not built: run `make controlplane` (localcluster/tools/build.sh)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return helm


@dataclass(frozen=True)
class Helm:
    """helm with its state (cache, config, repositories) kept in a temporary directory."""

    binary: Path
    home: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        proc = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=env, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def template(
        self, *sets: str, extra: Sequence[str] = (), values: Mapping[str, Any] | None = None
    ) -> list[Obj]:
        """Render the chart as release ``demo`` in namespace ``examples`` (hooks included)."""
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra]
        for item in sets:
            args += ["--set", item]
        if values is not None:
            path = self.home / "values-override.yaml"
            path.write_text(yaml.safe_dump(dict(values)))
            args += ["--values", str(path)]
        return parse_manifests(self.run(*args).stdout)

    def template_error(self, *sets: str, values: Mapping[str, Any] | None = None) -> str:
        """Render with values expected to be rejected; return helm's error output."""
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        for item in sets:
            args += ["--set", item]
        if values is not None:
            path = self.home / "values-bad.yaml"
            path.write_text(yaml.safe_dump(dict(values)))
            args += ["--values", str(path)]
        proc = self.run(*args, check=False)
        assert proc.returncode != 0, f"helm accepted {sets or values}; rendered:\n{proc.stdout}"
        return proc.stderr


def parse_manifests(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def of_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o.get("kind") == kind]


def named(objects: Iterable[Obj], kind: str, name: str) -> Obj:
    for o in objects:
        if o.get("kind") == kind and o["metadata"]["name"] == name:
            return o
    raise AssertionError(f"no {kind} {name!r} rendered")


def pod_specs(objects: Iterable[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(object, pod spec) for every workload and bare Pod."""
    for o in objects:
        kind = o.get("kind")
        if kind in ("Deployment", "StatefulSet", "Job", "RestateWorkload"):
            yield o, o["spec"]["template"]["spec"]
        elif kind == "Pod":
            yield o, o["spec"]


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def hook_of(obj: Obj) -> str | None:
    annotations: dict[str, str] = obj["metadata"].get("annotations") or {}
    return annotations.get("helm.sh/hook")


class PlayedHook:
    """A hook Job of the chart, played without a kubelet: its ServiceAccount, Role and
    RoleBinding applied (hook annotations stripped), its command run here as a Python process
    with that ServiceAccount's kubeconfig, which also proves the Role is enough."""

    def __init__(self, kube: Kube, namespace: str, release: str, template: str) -> None:
        self.kube = kube
        self.namespace = namespace
        rendered = kube.helm(
            "template", release, str(CHART), "--namespace", namespace, "--show-only", template
        ).stdout
        objects = parse_manifests(rendered)
        (job,) = of_kind(objects, "Job")
        self.command: list[str] = job["spec"]["template"]["spec"]["containers"][0]["command"]
        self.service_account: str = job["spec"]["template"]["spec"]["serviceAccountName"]
        self.rbac = [o for o in objects if o["kind"] != "Job"]
        for obj in self.rbac:  # hooks are not part of the release: strip helm's annotations
            obj["metadata"].pop("annotations", None)
        items = {"kind": "List", "apiVersion": "v1", "items": self.rbac}
        kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(items))
        self.kubeconfig = kube.service_account_kubeconfig(namespace, self.service_account)

    def run_job(self, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The Job's `python -m ...` command; fails the test unless it exits 0."""
        assert self.command[:2] == ["python", "-m"], self.command
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(OPERATOR_PATH), os.environ.get("PYTHONPATH")])
            ),
        }
        proc = subprocess.run(
            [sys.executable, *self.command[1:]],
            capture_output=True, text=True, env=env, timeout=timeout, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc

    def delete(self) -> None:
        """What the hook-succeeded delete policy does after the Job."""
        for obj in self.rbac:
            kind, name = obj["kind"].lower(), obj["metadata"]["name"]
            self.kube.kubectl("delete", "-n", self.namespace, f"{kind}/{name}", "--wait")
