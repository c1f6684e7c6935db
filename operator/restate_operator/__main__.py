"""`python -m restate_operator`: runs kopf with this operator's handlers.

One replica, no peering (`--standalone`): run it as a Deployment with `replicas: 1` and the
`Recreate` strategy. Environment (see settings.py): WATCH_NAMESPACE (namespaced operation;
empty = all namespaces), RESTATE_ADMIN_URL, METRICS_PORT, LIVENESS_PORT, BIND_HOST,
DRIFT_CHECK_SECONDS, ENDPOINT_TEMPLATE, LOG_LEVEL. Logs are JSON lines (LOG_FORMAT=plain for
humans).
"""

from __future__ import annotations

import sys

from kopf import cli

from restate_operator.settings import get_settings


def kopf_args() -> list[str]:
    settings = get_settings()
    args = [
        "run",
        "--standalone",
        "--log-format",
        settings.log_format,
        "-m",
        "restate_operator.handlers",
    ]
    if settings.log_level == "DEBUG":
        args.append("--debug")
    elif settings.log_level in ("WARNING", "ERROR"):
        args.append("--quiet")
    if settings.liveness_port:
        args += ["--liveness", f"http://{settings.bind_host}:{settings.liveness_port}/healthz"]
    if settings.watch_namespace:
        args += ["--namespace", settings.watch_namespace]
    else:
        args += ["--all-namespaces"]
    return args


def main() -> None:
    sys.argv = ["kopf", *kopf_args()]
    cli.main()


if __name__ == "__main__":
    main()
