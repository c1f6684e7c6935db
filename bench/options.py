"""The SDK's supported options (and our runtime's per-step code), as variants of the examples.

`bench/run.py --options` alternates each option with the default services and the TypeScript
peer. An option is a copy of `services/` made from the tree at run time with a few exact text
edits (each must match, so an example that changed fails loudly instead of measuring nothing):

- `opt-bare`: the runtime's per-step code removed (no input validation, no handler metrics or
  invocation-id log context, the `@stub` wrapper only calls the step: no "stub executed" log
  line, no counter). Its difference to the default is what our own per-step code costs;
  `opt-nolog` (subscriptions, 4 steps a call) only the "stub executed" line of each step.
- `opt-runserde`: every `ctx.run_typed` given `RunOptions(serde=JsonSerde())`, so the SDK skips
  its per-step work for the default serde (copy the options, read the step's signature, pick
  the serde from the return type).
- `opt-dataclass`, `opt-dict`, `opt-msgspec` (signup's input `User`): a stdlib dataclass, a
  plain `dict[str, str]`, a `msgspec.Struct` (validated by msgspec instead of pydantic)
  instead of the pydantic model.
- `opt-rusttask` (a server option, not the SDK's): granian's experimental Rust task
  implementation instead of asyncio tasks.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[1] / "services"


@dataclass(frozen=True)
class Edit:
    file: str  # relative to services/
    old: str  # exact text (or a regex with `regex=True`); must occur at least once
    new: str
    regex: bool = False


@dataclass(frozen=True)
class Option:
    title: str
    scenarios: tuple[str, ...]
    edits: tuple[Edit, ...]


# `ctx.run_typed("name", step,` -> `ctx.run_typed("name", step, _RUN_OPTIONS,`
_RUN_TYPED = r'ctx\.run_typed\(\s*(f?"[^"]*"),\s*(\w+),'
_RUN_OPTIONS = (
    "import restate\nfrom restate.serde import JsonSerde\n\n"
    "_RUN_OPTIONS: restate.RunOptions = restate.RunOptions(serde=JsonSerde())\n"
)
_STEP_FILES = (
    "subscriptions/service.py",
    "signup_workflow/service.py",
    "building_blocks/service.py",
)
_SIGNUP = "signup_workflow/service.py"

OPTIONS: dict[str, Option] = {
    "opt-bare": Option(
        "runtime's per-step code off (no validation, metrics, log lines)",
        ("greet-many", "subscriptions", "signup", "blocks"),
        (
            Edit(
                "examples_runtime/handlers.py",
                '    """Wraps every handler of these services, in place."""\n',
                '    """Wraps every handler of these services, in place."""\n    return\n',
            ),
            Edit(
                "examples_runtime/stubs.py",
                "            settings = get_settings()\n            probability",
                "            return fn(*args, **kwargs)\n"
                "            settings = get_settings()\n            probability",
            ),
        ),
    ),
    "opt-nolog": Option(
        'the "stub executed" log line of each step off (the rest of the runtime on)',
        ("subscriptions",),
        (
            Edit(
                "examples_runtime/stubs.py",
                "            if logger.isEnabledFor(logging.INFO):\n",
                "            if False:\n",
            ),
        ),
    ),
    "opt-runserde": Option(
        "`ctx.run_typed` with `RunOptions(serde=JsonSerde())`",
        ("subscriptions", "signup", "blocks"),
        tuple(
            Edit(f, _RUN_TYPED, r"ctx.run_typed(\1, \2, _RUN_OPTIONS,", True) for f in _STEP_FILES
        )
        + tuple(Edit(f, "import restate\n", _RUN_OPTIONS) for f in _STEP_FILES),
    ),
    "opt-dataclass": Option(
        "input `User` a stdlib dataclass",
        ("signup",),
        (
            Edit(
                _SIGNUP, "from pydantic import BaseModel\n", "from dataclasses import dataclass\n"
            ),
            Edit(_SIGNUP, "class User(BaseModel):\n", "@dataclass\nclass User:\n"),
        ),
    ),
    "opt-dict": Option(
        "input a plain `dict[str, str]`",
        ("signup",),
        (
            Edit(_SIGNUP, "user: User)", "user: dict[str, str])"),
            Edit(_SIGNUP, "user.name", 'user["name"]'),
            Edit(_SIGNUP, "user.email", 'user["email"]'),
        ),
    ),
    "opt-msgspec": Option(
        "input `User` a `msgspec.Struct`, validated by msgspec",
        ("signup",),
        (
            Edit(_SIGNUP, "from pydantic import BaseModel\n", "import msgspec\n"),
            Edit(_SIGNUP, "class User(BaseModel):\n", "class User(msgspec.Struct):\n"),
            Edit(
                "examples_runtime/handlers.py",
                "import functools\n",
                "import functools\n\nimport msgspec\n",
            ),
            Edit(
                "examples_runtime/handlers.py",
                "self._adapter: TypeAdapter[Any] = TypeAdapter(annotation)",
                "self._type = annotation",
            ),
            Edit(
                "examples_runtime/handlers.py",
                "            return self._adapter.validate_json(buf)\n"
                "        except ValidationError as error:\n"
                "            return InvalidInput(describe(error))\n",
                "            return msgspec.json.decode(buf, type=self._type)\n"
                "        except (msgspec.ValidationError, msgspec.DecodeError) as error:\n"
                "            return InvalidInput(str(error))\n",
            ),
        ),
    ),
    # Not the SDK's: granian's experimental Rust task implementation (Python < 3.12 only).
    "opt-rusttask": Option(
        "granian `task_impl=rust` (experimental, Python < 3.12)",
        ("subscriptions", "signup"),
        (
            Edit(
                "examples_runtime/granian_server.py",
                "from granian.constants import HTTPModes, Interfaces\n",
                "from granian.constants import HTTPModes, Interfaces, TaskImpl\n",
            ),
            Edit(
                "examples_runtime/granian_server.py",
                "        backlog=1024,\n",
                "        backlog=1024,\n        task_impl=TaskImpl.rust,\n",
            ),
        ),
    ),
}


def apply(edit: Edit, text: str) -> str:
    if edit.regex:
        new, count = re.subn(edit.old, edit.new, text)
    else:
        count = text.count(edit.old)
        new = text.replace(edit.old, edit.new)
    if not count:
        raise ValueError(f"bench option: {edit.file} no longer contains {edit.old!r}")
    return new


def make(label: str, dest: Path) -> Path:
    """A copy of the tree's `services/` with the option's edits, at `dest`; returns `dest`."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(SERVICES, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for edit in OPTIONS[label].edits:
        path = dest / edit.file
        path.write_text(apply(edit, path.read_text()))
    return dest
