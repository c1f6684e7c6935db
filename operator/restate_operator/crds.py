"""`python -m restate_operator.crds DIR...`: server-side applies the CustomResourceDefinitions
in DIR (the chart's `crds/`, mounted from a ConfigMap) and waits until each is Established.

Why: Helm installs the files under a chart's `crds/` on the first install only and never
upgrades them. An upgrade to a chart whose CRD gained a field would leave the old schema, and
the API server would prune the new field from every object the release then applies. The
chart runs this as a pre-upgrade hook Job, before the release's RestateWorkloads are applied
(see templates/operator/crd-upgrade-hook.yaml and operator/README.md). Its ServiceAccount may
only get and patch these two CRDs by name.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

FIELD_MANAGER = "restate-examples-chart"


def established(crd: Any) -> bool:
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def apply(api: client.ApiextensionsV1Api, body: dict[str, Any]) -> str:
    """Server-side apply (force: the chart owns these fields); returns the CRD's name."""
    name = str(body["metadata"]["name"])
    api.patch_custom_resource_definition(
        name,
        body,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--timeout-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    api = client.ApiextensionsV1Api()
    files = sorted(f for d in args.dirs for f in d.iterdir() if f.suffix in (".yaml", ".yml"))
    names = []
    for file in files:
        for body in yaml.safe_load_all(file.read_text()):
            if body and body.get("kind") == "CustomResourceDefinition":
                names.append(apply(api, body))
                print(f"applied {names[-1]} from {file.name}", flush=True)
    deadline = time.monotonic() + args.timeout_seconds
    for name in names:
        while not established(api.read_custom_resource_definition(name)):
            if time.monotonic() > deadline:
                print(f"{name} not Established after {args.timeout_seconds:.0f}s", file=sys.stderr)
                return 1
            time.sleep(0.5)
        print(f"{name} Established", flush=True)
    if not names:
        print(f"no CustomResourceDefinition in {[str(d) for d in args.dirs]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
