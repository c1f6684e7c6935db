"""Removes a release's RestateWorkloads and RestateRegistrations while the operator still runs.

`helm uninstall` deletes kinds it does not know (custom resources) last, after the operator's
Deployment: nobody is left to run the finalizer, and every resource stays Terminating. So the
chart runs this module as a pre-delete hook Job, before Helm deletes anything:

    python -m restate_operator.cleanup --namespace NS --selector app.kubernetes.io/instance=R \\
        --drain-seconds 60 --timeout-seconds 120 [--delete-pod NAME]

1. Deletes the named pods (the `helm test` pod: Helm never deletes a failed test pod, and hook
   objects are not part of the release).
2. Deletes every RestateWorkload and RestateRegistration matching the selector and waits until
   the operator has finished them (its finalizer: Drain, Force or Orphan, as each one says; a
   RestateWorkload's pods serve until then, and go with it).
3. After `--drain-seconds`, registrations still draining are switched to `deletionPolicy:
   Force`: the services' pods are deleted right after this hook anyway, so an invocation still
   pinned to them could not finish later; waiting longer only makes `helm uninstall` time out.
4. After `--timeout-seconds` (the operator is not running, or cannot reach Restate), removes the
   finalizers itself so that the uninstall completes, and says what may be left in Restate.

The Job's ServiceAccount needs: list, delete and patch on restateworkloads and
restateregistrations; delete on the named pods only. Exit code 0 when nothing is left, 2 on bad
arguments.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from kubernetes import client
from kubernetes.client import ApiException

from restate_operator.k8s import GROUP, PLURAL, VERSION, WORKLOADS, api_client

logger = logging.getLogger("restate_operator.cleanup")
POLL_SECONDS = 1.0
PLURALS = (WORKLOADS, PLURAL)


class Registrations:
    """The RestateWorkloads and RestateRegistrations of one namespace matching a selector.
    Items carry their plural under "plural"; names are unique across both kinds here (the
    chart names them after the examples)."""

    def __init__(self, namespace: str, selector: str) -> None:
        self.namespace = namespace
        self.selector = selector
        self._custom = client.CustomObjectsApi(api_client())
        self._core = client.CoreV1Api(api_client())
        self._plural: dict[str, str] = {}

    def remaining(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for plural in PLURALS:
            listed = self._custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, label_selector=self.selector
            )
            for item in cast(list[dict[str, Any]], cast(dict[str, Any], listed)["items"]):
                self._plural[item["metadata"]["name"]] = plural
                items.append({**item, "plural": plural})
        return items

    def _ignoring_missing(self, call: Callable[[], Any]) -> None:
        try:
            call()
        except ApiException as error:
            if error.status != 404:  # already gone: nothing to do
                raise

    def delete(self, name: str) -> None:
        plural = self._plural.get(name, PLURAL)
        self._ignoring_missing(
            lambda: self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name
            )
        )

    def patch(self, name: str, body: dict[str, Any]) -> None:
        plural = self._plural.get(name, PLURAL)
        self._ignoring_missing(
            lambda: self._custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name, body
            )
        )

    def delete_pod(self, name: str) -> None:
        self._ignoring_missing(lambda: self._core.delete_namespaced_pod(name, self.namespace))


def _names(items: Sequence[dict[str, Any]]) -> list[str]:
    return sorted(i["metadata"]["name"] for i in items)


def cleanup(
    registrations: Registrations,
    drain_seconds: float,
    timeout_seconds: float,
    pods: Sequence[str] = (),
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Runs steps 1-4; returns the registrations whose finalizer this had to remove itself."""
    for pod in pods:
        registrations.delete_pod(pod)
    started = clock()
    for item in sorted(registrations.remaining(), key=lambda i: str(i["metadata"]["name"])):
        name = item["metadata"]["name"]
        registrations.delete(name)
        logger.info("deleting %s %s/%s", item.get("plural"), registrations.namespace, name)
    forced: set[str] = set()
    while left := registrations.remaining():
        elapsed = clock() - started
        if elapsed >= timeout_seconds:
            names = _names(left)
            for name in names:
                registrations.patch(name, {"metadata": {"finalizers": []}})
            logger.warning(
                "the operator did not finish %s within %.0fs (is it running?): removed their "
                "finalizers; their Restate deployments may be left (restate deployment list)",
                names,
                timeout_seconds,
            )
            return names
        if elapsed >= drain_seconds:
            for item in left:
                name = item["metadata"]["name"]
                if item["spec"].get("deletionPolicy", "Drain") == "Drain" and name not in forced:
                    forced.add(name)
                    registrations.patch(name, {"spec": {"deletionPolicy": "Force"}})
                    logger.warning(
                        "%s still draining after %.0fs: removing it from Restate by force",
                        name,
                        drain_seconds,
                    )
        time.sleep(POLL_SECONDS)
    logger.info("every RestateWorkload and RestateRegistration matching %s is gone",
                registrations.selector)  # fmt: skip
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m restate_operator.cleanup",
        description="Delete a release's RestateWorkloads and RestateRegistrations and wait for "
        "the operator.",
    )
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--selector", required=True, help="label selector of the release")
    parser.add_argument("--drain-seconds", type=float, default=60.0)
    parser.add_argument("--timeout-seconds", type=float, default=120.0)
    parser.add_argument("--delete-pod", action="append", default=[], help="a pod to delete")
    args = parser.parse_args(argv)
    if not args.selector.strip():
        parser.error("--selector must not be empty: it would match every registration")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    registrations = Registrations(args.namespace, args.selector)
    cleanup(registrations, args.drain_seconds, args.timeout_seconds, args.delete_pod)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
