"""A real Restate server and the example services as real processes, for the tests (through
the fixtures of ``tests/plugins/restate.py``), the benchmarks and the reliability runs.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import catalog
import httpx

from testkit.ports import free_port
from testkit.processes import Process, ProcessExited, wait_until

REPO = Path(__file__).resolve().parents[1]

# Name -> ASGI app of each example (services/catalog.py).
EXAMPLES = {e.name: e.app for e in catalog.EXAMPLES}

# Faster invocation retries than the production default (500 ms doubling to 1 min), so that
# tests with injected failures finish in seconds; the semantics are the same.
FAST_RETRIES = {
    "RESTATE_DEFAULT_RETRY_POLICY__INITIAL_INTERVAL": "50ms",
    "RESTATE_DEFAULT_RETRY_POLICY__MAX_INTERVAL": "500ms",
    "RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "1000",
}


def install_restate() -> Path:
    """The directory with the pinned `restate-server` and `restate` binaries (installs once)."""
    out = subprocess.run(
        [str(REPO / "scripts" / "install-restate.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


class RestateServer:
    """A single-node `restate-server` on free loopback ports with its own data directory."""

    def __init__(self, bin_dir: Path, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.ingress_port, self.admin_port, self.node_port = free_port(), free_port(), free_port()
        self.base_dir = workdir / "restate-data"
        self.base_dir.mkdir(parents=True, exist_ok=True)
        server_env = {
            "DO_NOT_TRACK": "1",
            "RESTATE_NODE_NAME": "test-node",
            "RESTATE_LISTEN_MODE": "tcp",
            "RESTATE_BIND_ADDRESS": f"127.0.0.1:{self.node_port}",
            "RESTATE_ADVERTISED_ADDRESS": f"http://127.0.0.1:{self.node_port}/",
            "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{self.ingress_port}",
            "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{self.admin_port}",
            "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "256MB",
            "RESTATE_ADMIN__QUERY_ENGINE__MEMORY_SIZE": "128MB",
            "RESTATE_LOG_FORMAT": "compact",
            **FAST_RETRIES,
            **(env or {}),
        }
        self.process = Process(
            "restate-server",
            [str(bin_dir / "restate-server"), "--no-logo", "--base-dir", str(self.base_dir)],
            server_env,
            workdir / "restate-server.log",
        )
        self.ingress_url = f"http://127.0.0.1:{self.ingress_port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.admin = httpx.Client(base_url=self.admin_url, timeout=30)

    def start(self, timeout: float = 60) -> None:
        self.process.start()
        try:
            wait_until(self.healthy, timeout, "restate-server to become healthy")
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.process.tail()}") from None

    def healthy(self) -> bool:
        if not self.process.running:
            raise ProcessExited(f"restate-server exited:\n{self.process.tail()}")
        admin = httpx.get(f"{self.admin_url}/health", timeout=2)
        ingress = httpx.get(f"{self.ingress_url}/restate/health", timeout=2)
        return admin.status_code == 200 and ingress.status_code == 200

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def register(self, uri: str, **options: Any) -> dict[str, Any]:
        answer = self.admin.post("/deployments", json={"uri": uri, **options})
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def query(self, sql: str) -> list[dict[str, Any]]:
        return query(self.admin, sql)


def query(admin: httpx.Client, sql: str) -> list[dict[str, Any]]:
    """The rows of a SQL query over Restate's system tables (POST /query on an admin API
    client: a local server's, or a port-forward to one on a cluster)."""
    answer = admin.post("/query", json={"query": sql}, headers={"accept": "application/json"})
    answer.raise_for_status()
    rows: list[dict[str, Any]] = answer.json()["rows"]
    return rows


class ExampleService:
    """One example service process (`python -m examples_runtime <app>`) on a free port."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process(
            name,
            [sys.executable, "-m", "examples_runtime", EXAMPLES[name]],
            {"HOST": "127.0.0.1", "PORT": str(self.port), "LOG_FORMAT": "json", **env},
            workdir / f"{name}.log",
        )
        self._supervisor: threading.Thread | None = None
        self._supervise = threading.Event()
        self.restarts = 0
        # (time.time() when reaped, exit code) of every exit the supervisor restarted after.
        self.exits: list[tuple[float, int]] = []

    def start(self, timeout: float = 30) -> None:
        self.process.start()
        try:
            wait_until(self.ready, timeout, f"{self.name} to become ready")
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.process.tail()}") from None

    def ready(self) -> bool:
        if not self.process.running:
            raise ProcessExited(f"{self.name} exited:\n{self.process.tail()}")
        return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200

    def supervise(self) -> None:
        """Restarts the process whenever it dies, as Kubernetes would, until `stop`."""
        self._supervise.set()

        def loop() -> None:
            while self._supervise.is_set():
                if not self.process.running and self._supervise.is_set():
                    self.exits.append((time.time(), self.process.wait(10)))
                    self.restarts += 1
                    self.process.start()
                time.sleep(0.1)

        self._supervisor = threading.Thread(target=loop, name=f"supervise-{self.name}", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        self._supervise.clear()
        if self._supervisor:
            self._supervisor.join(5)
            self._supervisor = None
        self.process.stop()

    def records(self, message: str | None = None) -> list[dict[str, Any]]:
        """The service's JSON log records (all restarts), optionally only those with `message`."""
        return [
            r for r in self.process.json_records() if message is None or r["message"] == message
        ]

    def executions(self) -> list[tuple[str, str, tuple[Any, ...]]]:
        """(invocation id, step, arguments) of every successful real stub execution."""
        return [
            (r["invocation_id"], r["step"], tuple(r["stub_args"]))
            for r in self.records("stub executed")
        ]


@dataclass
class Suite:
    """A Restate server with example services registered, and an ingress client."""

    server: RestateServer
    services: dict[str, ExampleService] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ingress = httpx.Client(base_url=self.server.ingress_url, timeout=120)

    def __getitem__(self, name: str) -> ExampleService:
        return self.services[name]

    def register_all(self) -> None:
        for service in self.services.values():
            self.server.register(service.url, force=True)

    def close(self) -> None:
        self.ingress.close()
        for service in self.services.values():
            service.stop()
        self.server.stop()


def start_suite(
    bin_dir: Path,
    workdir: Path,
    names: Sequence[str] = tuple(EXAMPLES),
    env: dict[str, str] | None = None,
    server_env: dict[str, str] | None = None,
) -> Suite:
    server = RestateServer(bin_dir, workdir, server_env)
    server.start()
    suite = Suite(server)
    try:
        for name in names:
            service = ExampleService(
                name, workdir, {"RESTATE_INGRESS_URL": server.ingress_url, **(env or {})}
            )
            suite.services[name] = service
            service.start()
        suite.register_all()
    except BaseException:
        suite.close()
        raise
    return suite


class SuiteFactory:
    def __init__(self, bin_dir: Path, tmp_path: Path) -> None:
        self.bin_dir = bin_dir
        self.tmp_path = tmp_path
        self.started: list[Suite] = []

    def __call__(
        self,
        *names: str,
        env: dict[str, str] | None = None,
        server_env: dict[str, str] | None = None,
    ) -> Suite:
        workdir = self.tmp_path / f"suite{len(self.started)}"
        workdir.mkdir()
        started = start_suite(self.bin_dir, workdir, names or tuple(EXAMPLES), env, server_env)
        self.started.append(started)
        return started
