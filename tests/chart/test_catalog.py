"""The example catalogue (services/catalog.py) against every declarative file that lists the
examples: the service folders, the chart's values and what it renders, the Dockerfile and the
image build (localcluster/images/images.sh); and skaffold.yaml, which needs no entry per
example. Adding an example to the catalogue and forgetting one of them fails here, naming the
file."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import catalog
import yaml
from chart.chartkit import CHART, FULLNAME, Helm, named, of_kind
from chart.test_dockerfile import DOCKERFILE, effective, parse

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = "restate-examples-{}"


def _values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def test_the_catalogue_is_consistent() -> None:
    for field in ("name", "module", "port", "values_key", "image_target"):
        seen = [getattr(e, field) for e in catalog.EXAMPLES]
        assert len(set(seen)) == len(seen), f"two examples share a {field}: {seen}"
    assert all(e.restate_services for e in catalog.EXAMPLES)
    services = [s for e in catalog.EXAMPLES for s in e.restate_services]
    assert len(set(services)) == len(services), f"a Restate service in two examples: {services}"
    assert catalog.OPERATOR_TARGET not in {e.image_target for e in catalog.EXAMPLES}


def test_every_example_has_its_service_folder_and_app() -> None:
    for e in catalog.EXAMPLES:
        path = REPO_ROOT / "services" / (e.module.replace(".", "/") + ".py")
        assert path.is_file(), f"{e.name}: no {path.relative_to(REPO_ROOT)}"
        module = importlib.import_module(e.module)
        assert hasattr(module, "app"), f"{e.name}: {e.module} has no `app`"


def test_the_chart_values_list_the_catalogue() -> None:
    examples = _values()["examples"]
    assert set(examples) - {"defaults"} == {e.values_key for e in catalog.EXAMPLES}, (
        "values.yaml examples: and services/catalog.py differ"
    )
    for e in catalog.EXAMPLES:
        values = examples[e.values_key]
        assert values["name"] == e.name, f"values.yaml examples.{e.values_key}.name"
        assert values["app"] == e.app, f"values.yaml examples.{e.values_key}.app"
        assert values["restateServices"] == list(e.restate_services), (
            f"values.yaml examples.{e.values_key}.restateServices"
        )
        # Its image is derived from its name (restate-examples-<target>), not listed.
        assert "repository" not in values.get("image", {}), (
            f"values.yaml examples.{e.values_key}.image.repository: derived, not set"
        )
    assert _values()["operator"]["image"]["repository"] == IMAGE.format(catalog.OPERATOR_TARGET)


def test_the_chart_renders_one_workload_per_example(helm: Helm) -> None:
    workloads = {w["metadata"]["name"]: w for w in of_kind(helm.template(), "RestateWorkload")}
    assert set(workloads) == {f"{FULLNAME}-{e.name}" for e in catalog.EXAMPLES}
    for e in catalog.EXAMPLES:
        workload = workloads[f"{FULLNAME}-{e.name}"]
        annotations = workload["metadata"]["annotations"]
        assert annotations["examples.restate.dev/restate-services"] == ",".join(e.restate_services)
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", "examples_runtime", e.app]
        assert container["image"].split(":")[0] == IMAGE.format(e.image_target)


def test_the_dockerfile_has_one_stage_per_example() -> None:
    _, stages = parse(DOCKERFILE.read_text())
    services = {name for name, stage in stages.items() if stage.base == "service"}
    assert services == {e.image_target for e in catalog.EXAMPLES}, "Dockerfile FROM service AS"
    for e in catalog.EXAMPLES:
        cmd = json.loads(effective(stages, e.image_target, "CMD") or "null")
        assert cmd == ["python", "-m", "examples_runtime", e.app], f"Dockerfile {e.image_target}"
    assert catalog.OPERATOR_TARGET in stages
    # The image build checks each example's module imports.
    (check,) = [r for r in stages["build-services"].all("RUN") if "python -c" in r]
    imported = set(re.findall(r"[a-z_]+\.service\b", check))
    assert imported == {e.module for e in catalog.EXAMPLES}, "Dockerfile build-services imports"


def test_the_image_build_builds_every_target() -> None:
    proc = subprocess.run(
        [str(REPO_ROOT / "localcluster" / "images" / "images.sh"), "--print-refs"],
        capture_output=True,
        text=True,
        check=True,
    )
    built = {
        m.group(1)
        for line in proc.stdout.split()
        if (m := re.fullmatch(r"docker\.io/library/restate-examples-([a-z0-9-]+):.*", line))
    }
    assert built == set(catalog.IMAGE_VALUES), "localcluster/images/images.sh targets"


def test_skaffold_runs_every_example_from_its_one_service_image(helm: Helm) -> None:
    """skaffold builds the Dockerfile's shared `service` stage once and the operator, and sets
    the first as every example's image: an example added to the catalogue needs no entry."""
    config = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a["docker"]["target"] for a in config["build"]["artifacts"]}
    assert artifacts == {
        IMAGE.format("service"): "service",
        IMAGE.format(catalog.OPERATOR_TARGET): catalog.OPERATOR_TARGET,
    }, "skaffold artifacts"
    _, stages = parse(DOCKERFILE.read_text())
    assert {name for name, stage in stages.items() if stage.base == "service"} == {
        e.image_target for e in catalog.EXAMPLES
    }, "the examples' stages add only their CMD to the stage skaffold builds"
    (release,) = config["deploy"]["helm"]["releases"]
    templates: dict[str, str] = release["setValueTemplates"]
    built = {
        "examples.defaults": ("restate_examples_service", "registry.test/service", "s1"),
        "operator": ("restate_examples_operator", "registry.test/operator", "o1"),
    }
    sets = []
    for key, (variable, repository, tag) in built.items():
        assert templates.pop(f"{key}.image.repository") == f"{{{{.IMAGE_REPO_{variable}}}}}"
        assert templates.pop(f"{key}.image.tag") == f"{{{{.IMAGE_TAG_{variable}}}}}"
        sets += [f"{key}.image.repository={repository}", f"{key}.image.tag={tag}"]
    assert not templates, f"skaffold.yaml setValueTemplates beyond the two images: {templates}"
    # The chart as skaffold installs it: every example of the catalogue on the built image.
    objects = helm.template(*sets)
    workloads = {w["metadata"]["name"]: w for w in of_kind(objects, "RestateWorkload")}
    for e in catalog.EXAMPLES:
        (container,) = workloads[f"{FULLNAME}-{e.name}"]["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.test/service:s1", e.name
        assert container["command"] == ["python", "-m", "examples_runtime", e.app]
    operator = named(objects, "Deployment", f"{FULLNAME}-operator")
    image = operator["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.test/operator:o1"
