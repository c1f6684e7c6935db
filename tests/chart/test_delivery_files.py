"""skaffold.yaml and the kind workflow, checked by structure: skaffold itself cannot be
installed here (its go.mod has replace directives), and GitHub Actions only runs on GitHub."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from chart.chartkit import CHART

REPO_ROOT = Path(__file__).resolve().parents[2]


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def dockerfile_stages() -> set[str]:
    text = (REPO_ROOT / "Dockerfile").read_text()
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.MULTILINE | re.IGNORECASE))


def has_value(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_skaffold_builds_from_the_dockerfile() -> None:
    config = load(REPO_ROOT / "skaffold.yaml")
    api = config["apiVersion"]
    assert re.fullmatch(r"skaffold/v4beta(\d+)", api) and int(api.split("beta")[1]) >= 11
    assert config["kind"] == "Config"
    stages = dockerfile_stages()
    for artifact in config["build"]["artifacts"]:
        assert artifact["context"] == "."
        assert artifact["docker"]["dockerfile"] == "Dockerfile"
        assert artifact["docker"]["target"] in stages, artifact


def test_skaffold_sets_only_chart_values() -> None:
    """Which images skaffold sets where: tests/chart/test_catalog.py."""
    config = load(REPO_ROOT / "skaffold.yaml")
    values = load(CHART / "values.yaml")
    (release,) = config["deploy"]["helm"]["releases"]
    assert (REPO_ROOT / release["chartPath"]).resolve() == CHART.resolve()
    for key in [*release["setValueTemplates"], *release.get("setValues", {})]:
        assert has_value(values, key), f"skaffold.yaml sets {key}, which is not a chart value"


def test_skaffold_port_forwards_restate() -> None:
    config = load(REPO_ROOT / "skaffold.yaml")
    (release,) = config["deploy"]["helm"]["releases"]
    forwards = {(f["resourceName"], f["port"], f["localPort"]) for f in config["portForward"]}
    restate = f"{release['name']}-restate"  # release name contains the chart name
    assert forwards == {(restate, 8080, 8080), (restate, 9070, 9070)}
    assert all(f["namespace"] == release["namespace"] for f in config["portForward"])


def test_skaffold_users_are_told_the_version_and_where_images_go() -> None:
    """skaffold before v2.17 cannot drive Helm 4; bare image names push to docker.io unless
    --default-repo is given (or the cluster is local): both the header and the README say so."""
    header = (REPO_ROOT / "skaffold.yaml").read_text().split("apiVersion:")[0]
    readme = (REPO_ROOT / "README.md").read_text()
    for text in (header, readme):
        assert "skaffold v2.17 or newer" in text
        assert "--default-repo=" in text and "--push=false" in text
    assert "image registry of the kube context" not in header


def test_dockerfile_needs_no_frontend_image() -> None:
    """A `# syntax=` line makes BuildKit pull a frontend image: an offline build must not."""
    first = (REPO_ROOT / "Dockerfile").read_text().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first, re.IGNORECASE), first


def test_skaffold_kind_profile() -> None:
    config = load(REPO_ROOT / "skaffold.yaml")
    (kind,) = [p for p in config["profiles"] if p["name"] == "kind"]
    assert kind["build"]["local"]["push"] is False
    assert kind["activation"] == [{"kubeContext": "kind-.*"}]


def test_kind_workflow() -> None:
    workflow = load(REPO_ROOT / ".github" / "workflows" / "kind-e2e.yml")
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    commands = "\n".join(step.get("run", "") for step in job["steps"])
    # The hosted run is the target run here (a node image of the pinned Kubernetes, built by
    # localcluster/kind/build.sh, not kind's default image, which the chart may refuse).
    assert "make e2e-kind" in commands, commands
    assert "kind create cluster" not in commands, commands
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "E2E_KIND_ARGS ?= tests/e2e\n" in makefile
    assert "$(PY) -m pytest $(E2E_KIND_ARGS) -m e2e" in makefile
    assert (REPO_ROOT / "tests" / "e2e" / "test_real_cluster.py").is_file()
