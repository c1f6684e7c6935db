"""The examples of this suite, in one place: what each one is called, which module serves it,
where `make run` puts it, the Restate services it hosts, the Dockerfile target of its image and
its key in the chart's values. `make run`, the test kit, the fixtures, the benchmarks and the
reliability runs read this list; the chart's values, skaffold.yaml, the Dockerfile and the image
build are declarative and checked against it (tests/chart/test_catalog.py).

Adding an example: an entry here, its folder under services/ (a ``service.py`` with ``app``),
its key under ``examples:`` in the chart's values.yaml, and its stage in the Dockerfile; nothing
else (skaffold.yaml runs every example from the Dockerfile's shared ``service`` stage).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    name: str
    """Its processes, containers and Kubernetes resources are called this (``user-object``)."""
    module: str
    """The module whose ``app`` serves it (``user_object.service``)."""
    port: int
    """Where `make run` serves it on this machine."""
    restate_services: tuple[str, ...]
    """The Restate services (and objects, workflows) it registers."""
    values_key: str
    """Its key under ``examples:`` in the chart's values (``userObject``)."""

    @property
    def app(self) -> str:
        """The ASGI app, as ``python -m examples_runtime`` takes it."""
        return f"{self.module}:app"

    @property
    def image_target(self) -> str:
        """The Dockerfile target building its image, ``restate-examples-<target>``."""
        return self.name


EXAMPLES: tuple[Example, ...] = (
    Example("subscriptions", "subscriptions.service", 9081, ("SubscriptionService",),
            "subscriptions"),
    Example("building-blocks", "building_blocks.service", 9082,
            ("MyService", "SubscriptionObject"), "buildingBlocks"),
    Example("user-object", "user_object.service", 9083, ("GreeterObject",), "userObject"),
    Example("signup-workflow", "signup_workflow.service", 9084, ("SignupWorkflow",),
            "signupWorkflow"),
)  # fmt: skip
BY_NAME = {e.name: e for e in EXAMPLES}

OPERATOR_TARGET = "operator"
"""The Dockerfile target of the operator's image; its key in the chart's values: ``operator``."""
# Every image of the suite (Dockerfile target -> the chart's values key of that image).
IMAGE_VALUES = {
    **{e.image_target: f"examples.{e.values_key}" for e in EXAMPLES},
    OPERATOR_TARGET: "operator",
}
