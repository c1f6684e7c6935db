"""`make run`: the four examples behind a real Restate server on this machine, no cluster.

Starts restate-server (ingress :8080, admin :9070, data in .local/restate-data or
$RESTATE_DATA_DIR, kept across runs), the four services on :9081-:9084, registers them,
prints the requests to try, and streams every process's log with its name in front.
Ctrl-C stops everything.
"""

from __future__ import annotations

import datetime
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml
from catalog import EXAMPLES
from honcho.manager import Manager
from honcho.printer import Message

REPO = Path(__file__).resolve().parents[1]
INGRESS, ADMIN = "http://localhost:8080", "http://localhost:9070"
SERVICES = {e.name: (e.port, e.app) for e in EXAMPLES}  # name: (port, ASGI app)
CHART_VALUES = REPO / "deploy" / "helm" / "restate-examples" / "values.yaml"

TRY_THESE = f"""
The four examples are registered. Try them (README.md explains each):

  curl {INGRESS}/SubscriptionService/add -H 'content-type: application/json' -d \\
    '{{"userId": "Sam Beckett", "creditCard": "1234-5678-9012-3456", \\
      "subscriptions": ["Netflix", "Disney+", "HBO Max"]}}'

  curl {INGRESS}/MyService/run -X POST -H 'idempotency-key: my-first-run'
  curl localhost:9082/awakeables        # then resolve the awakeable the log line names

  curl {INGRESS}/GreeterObject/mary/greet -H 'content-type: application/json' -d '"Hi"'
  curl -X POST {INGRESS}/GreeterObject/mary/ungreet

  curl {INGRESS}/SignupWorkflow/userid1/run/send -H 'content-type: application/json' \\
    -d '{{ "name": "Bob", "email": "bob@builder.com" }}'
  # open the link from the signup-workflow log, or curl .../click with its secret, then:
  curl {INGRESS}/restate/workflow/SignupWorkflow/userid1/attach

Restate's UI: http://localhost:9070   CLI: {{restate}} invocations list
"""


def say(manager: Manager, text: str) -> None:
    manager.events.put(
        Message(type="line", data=text, time=datetime.datetime.now(), name="run", colour=None)
    )


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def register_when_ready(manager: Manager, restate_cli: Path) -> None:
    """Waits for the server and the services, then registers each service with the admin API."""
    deadline = time.monotonic() + 120
    pending = {ADMIN + "/health", *(f"http://localhost:{p}/readyz" for p, _ in SERVICES.values())}
    while pending and time.monotonic() < deadline:
        for url in list(pending):
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    pending.discard(url)
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    if pending:
        say(manager, f"not ready after 120 s: {sorted(pending)}; see the logs above\n")
        return
    for name, (port, _) in SERVICES.items():
        # force: the code behind the URL may have changed since the last run; rediscover it.
        answer = httpx.post(
            f"{ADMIN}/deployments", json={"uri": f"http://localhost:{port}", "force": True}
        )
        if answer.is_error:
            say(manager, f"registering {name} failed: {answer.status_code} {answer.text}\n")
            return
        services = ", ".join(s["name"] for s in answer.json()["services"])
        say(manager, f"registered {name} ({services}) as {answer.json()['id']}\n")
    say(manager, TRY_THESE.replace("{restate}", str(restate_cli)))


def retry_policy_env() -> dict[str, str]:
    """Restate's invocation retry policy, the same as the chart's (`restate.retryPolicy` in its
    values.yaml, where the reason for it is written): the examples' steps fail on purpose, and
    Restate's own default would make some invocations wait for a minute between attempts."""
    policy: dict[str, object] = yaml.safe_load(CHART_VALUES.read_text())["restate"]["retryPolicy"]
    return {
        "RESTATE_DEFAULT_RETRY_POLICY__" + re.sub(r"(?<!^)([A-Z])", r"_\1", key).upper(): str(value)
        for key, value in policy.items()
    }


def main() -> int:
    busy = [p for p in (8080, 9070, 5122, *(p for p, _ in SERVICES.values())) if port_in_use(p)]
    if busy:
        print(f"ports already in use: {busy}; stop whatever holds them first", file=sys.stderr)
        return 1
    bin_dir = Path(
        subprocess.run(
            [str(REPO / "scripts" / "install-restate.sh")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
    )
    data_dir = Path(os.environ.get("RESTATE_DATA_DIR", REPO / ".local" / "restate-data"))
    data_dir.mkdir(parents=True, exist_ok=True)

    manager = Manager()
    server_env = {
        **os.environ,
        "DO_NOT_TRACK": "1",
        "RESTATE_NODE_NAME": "local",
        "RESTATE_LOG_FORMAT": "compact",
        # Restate's own progress at info; its release check (no internet here) stays quiet.
        "RESTATE_LOG_FILTER": "warn,restate_server=info,restate_node=info,octocrab=off",
        **retry_policy_env(),
    }
    manager.add_process(
        "restate-server",
        f"exec {bin_dir / 'restate-server'} --no-logo --base-dir {data_dir}",
        env=server_env,
    )
    for name, (port, app) in SERVICES.items():
        env = {
            **os.environ,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "LOG_FORMAT": "console",
            "RESTATE_INGRESS_URL": INGRESS,
            "PYTHONUNBUFFERED": "1",
        }
        manager.add_process(name, f"exec {sys.executable} -m examples_runtime {app}", env=env)
    threading.Thread(
        target=register_when_ready, args=(manager, bin_dir / "restate"), daemon=True
    ).start()
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
