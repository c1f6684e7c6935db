"""A real Kubernetes control plane from the binaries of ``localcluster/tools/build.sh``:
etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and optionally kwok (fake
nodes whose pods become Running and Ready without running anything).

Two shapes, one code path:
- the test control plane (``ControlPlane(bin_dir, workdir)``): everything on 127.0.0.1 with
  free ports, a kwok node, no real node; the ``kube`` fixture of the chart/operator tests;
- the control plane of the local real node (``address`` = the node bridge's address): the API
  server listens where pods reach it, keeps the ``kubernetes`` Service's endpoints, and may
  call the kubelet (logs, exec, port-forward) with its client certificate.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from kubernetes import client as k8s
from kubernetes.client import ApiException

from localcluster import kubeconfig as kc
from localcluster.pki import CertificateAuthority, KeyPair, service_account_keys
from testkit.ports import free_port
from testkit.processes import Process, stop_pid
from testkit.tiers import BUILD_SH, REPO

REPO_ROOT = REPO  # the checkout (one place: testkit/tiers.py, with build.sh's path)
ENV_BIN_DIR = "RESTATE_EXAMPLES_CONTROLPLANE_BIN"

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
FAKE_POD_CIDR = "10.250.0.0/16"
FAKE_NODE = "kwok-node-0"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"

STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0


class KubeStartupError(RuntimeError):
    """A component did not become healthy; the message holds its log's last lines."""


CONTROL_PLANE_STAGE = "control-plane"
"""What build.sh builds and publishes first: the control plane (etcd, the Kubernetes binaries,
kwok, helm), all that the chart, operator and kube tests need. The node's binaries, Prometheus
and the oldest kube-apiserver follow."""


def resolve_bin_dir(*, build: bool = False, stage: str = "") -> Path:
    """The directory with the built binaries: $RESTATE_EXAMPLES_CONTROLPLANE_BIN, or the
    cache of ``localcluster/tools/build.sh`` (built first if ``build`` is true). With
    ``stage=CONTROL_PLANE_STAGE`` it is found once the control plane is built, before the rest
    of the build is."""
    override = os.environ.get(ENV_BIN_DIR)
    if override:
        return Path(override)
    cmd = (
        [str(BUILD_SH)]
        if build
        else [str(BUILD_SH), "--print-bin-dir", *([stage] if stage else [])]
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise KubeStartupError(
            "the Kubernetes binaries are not built: run `make controlplane` "
            "(localcluster/tools/build.sh; a cold build takes 10-30 minutes)\n" + proc.stderr
        )
    return Path(proc.stdout.strip().splitlines()[-1])


def find_tool(bin_dir: Path | None, name: str) -> str:
    """A CLI (kubectl, helm) from the built binaries, else from $PATH."""
    if bin_dir is not None and (bin_dir / name).exists():
        return str(bin_dir / name)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make controlplane`")
    return found


def helm_env(workdir: Path) -> dict[str, str]:
    """Helm's cache, config and data directories under ``workdir`` (no state in $HOME)."""
    home = workdir / "helm"
    return {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


@dataclass
class Components:
    """Processes started in order, stopped in reverse; each one's health checked while waiting."""

    bin_dir: Path
    workdir: Path
    startup_timeout: float = STARTUP_TIMEOUT
    die_with_parent: bool = True
    procs: list[Process] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        args: Sequence[str],
        *,
        binary: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        path = binary or self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise KubeStartupError(f"{path} is missing: run `make controlplane`")
        proc = Process(
            name,
            [str(path), *args],
            dict(env or {}),
            self.workdir / f"{name}.log",
            cwd=self.workdir,
            die_with_parent=self.die_with_parent,
        )
        proc.start()
        self.procs.append(proc)
        return proc

    def wait(self, name: str, deadline: float, ready: Callable[[], bool]) -> None:
        """Polls ``ready`` until true; fails early, with the log, if any process exited."""
        last_error = ""
        while True:
            for proc in self.procs:
                if not proc.running:
                    raise KubeStartupError(
                        f"{proc.name} exited while waiting for {name}; last lines of "
                        f"{proc.log_path}:\n{proc.tail(40)}"
                    )
            try:
                if ready():
                    return
            except Exception as e:
                last_error = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                log = self.workdir / f"{name}.log"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                raise KubeStartupError(
                    f"{name} not ready after {self.startup_timeout:.0f}s ({last_error}); "
                    f"last lines of {log}:\n{tail}"
                )
            time.sleep(0.2)

    def stop(self, first: Sequence[str] = ()) -> None:
        """Stops the named processes first, then the rest in reverse order of start."""
        ordered = [p for p in self.procs if p.name in first]
        ordered += [p for p in reversed(self.procs) if p.name not in first]
        for proc in ordered:
            proc.stop(STOP_TIMEOUT)
        self.procs.clear()

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.procs if p.running}


def http_ok(url: str, *, token: str = "", ca_pem: bytes | None = None, body: str = "") -> bool:
    """GET ``url`` answers 200 (and contains ``body``). Components' own certificates are
    self-signed and only on this machine, so they are not verified unless ``ca_pem`` is given."""
    import ssl

    verify: ssl.SSLContext | bool = False
    if ca_pem is not None:
        verify = ssl.create_default_context(cadata=ca_pem.decode())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(url, headers=headers, verify=verify, timeout=2.0)
    return r.status_code == 200 and body in r.text


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler (+ kwok).

    Usable outside pytest: ``with ControlPlane(bin_dir, workdir) as cp: ...``.
    """

    bin_dir: Path
    workdir: Path
    address: str = "127.0.0.1"
    """Where the API server listens (and what it advertises)."""
    api_port: int = 0
    """0: a free port."""
    fake_node: bool = True
    """Start kwok and one fake node (the test control plane); False for a real node."""
    kubelet_client: KeyPair | None = None
    """The API server's client certificate for the kubelet API (logs, exec, port-forward)."""
    keep_workdir: bool = False
    apiserver: str = "kube-apiserver"
    """The API server's binary in ``bin_dir`` (``kube-apiserver-oldest``: the oldest release the
    chart supports)."""
    api_only: bool = False
    """Only etcd and the API server (no controllers, scheduler or kwok): enough for
    server-side dry-runs."""
    startup_timeout: float = STARTUP_TIMEOUT
    die_with_parent: bool = True
    ca: CertificateAuthority = field(init=False)
    server: str = field(init=False)
    admin_token: str = field(init=False)
    kubeconfig: Path = field(init=False)
    components: Components = field(init=False)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ca_pem(self) -> bytes:
        return self.ca.pem

    def prepare(self) -> None:
        """The CA and admin credentials, before anything starts (a node needs the CA first)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ca = CertificateAuthority(self.workdir / "pki")
        self.admin_token = secrets.token_urlsafe(32)
        self.api_port = self.api_port or free_port()
        self.server = f"https://{self.address}:{self.api_port}"
        self.kubeconfig = kc.write(
            self.workdir / "admin.kubeconfig",
            kc.token_kubeconfig(self.server, self.ca.pem, self.admin_token, user="admin"),
        )

    def start(self) -> None:
        if not hasattr(self, "ca"):
            self.prepare()
        self.components = Components(
            self.bin_dir, self.workdir, self.startup_timeout, self.die_with_parent
        )
        try:
            self._start(time.monotonic() + self.startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, deadline: float) -> None:
        work, c = self.workdir, self.components
        pki = work / "pki"
        serving = self.ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=tuple(dict.fromkeys(("127.0.0.1", self.address, KUBERNETES_SERVICE_IP))),
            server=True,
        )
        sa = service_account_keys(pki)
        tokens = work / "tokens.csv"
        tokens.write_text(f'{self.admin_token},admin,admin-uid,"system:masters"\n')
        tokens.chmod(0o600)

        etcd_port, etcd_peer = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        c.spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={work / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        c.wait("etcd", deadline, lambda: http_ok(f"{etcd_url}/health", body="true"))

        node_args: list[str] = ["--endpoint-reconciler-type=none"]
        if not self.fake_node:
            # Pods reach the API server through the `kubernetes` Service: keep its endpoints.
            node_args = ["--endpoint-reconciler-type=lease"]
        if self.kubelet_client is not None:
            node_args += [
                f"--kubelet-client-certificate={self.kubelet_client.cert}",
                f"--kubelet-client-key={self.kubelet_client.key}",
                "--kubelet-preferred-address-types=InternalIP",
            ]
        c.spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={self.api_port}",
                f"--cert-dir={work / 'apiserver-certs'}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self.ca.cert}",
                # Front-proxy settings: the components' delegated authn expects them.
                f"--requestheader-client-ca-file={self.ca.cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--token-auth-file={tokens}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                *node_args,
            ],
            binary=self.bin_dir / self.apiserver,
        )
        c.wait(
            "kube-apiserver",
            deadline,
            lambda: http_ok(
                f"{self.server}/readyz", token=self.admin_token, ca_pem=self.ca.pem, body="ok"
            ),
        )
        if self.api_only:
            return

        kcm_port, sched_port = free_port(), free_port()
        kubeconfig = f"--kubeconfig={self.kubeconfig}"
        delegated = [
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--cert-dir={work / 'certs'}",
        ]
        c.spawn(
            "kube-controller-manager",
            [
                kubeconfig,
                *delegated,
                f"--secure-port={kcm_port}",
                "--controllers=*",
                "--leader-elect=false",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={self.ca.cert}",
                f"--cluster-signing-cert-file={self.ca.cert}",
                f"--cluster-signing-key-file={self.ca.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--use-service-account-credentials=false",
            ],
        )
        c.spawn(
            "kube-scheduler",
            [kubeconfig, *delegated, f"--secure-port={sched_port}", "--leader-elect=false"],
        )
        kwok_port = free_port()
        if self.fake_node:
            self._spawn_kwok(kwok_port)
        for name, port in (("kube-controller-manager", kcm_port), ("kube-scheduler", sched_port)):
            c.wait(name, deadline, functools.partial(http_ok, f"https://127.0.0.1:{port}/healthz"))
        with self.api_client() as api:
            core = k8s.CoreV1Api(api)
            c.wait("kube-controller-manager", deadline, lambda: sa_exists(core, "default"))
            if self.fake_node:
                c.wait("kwok", deadline, lambda: http_ok(f"http://127.0.0.1:{kwok_port}/healthz"))
                core.create_node(_fake_node(FAKE_NODE))
                c.wait("kwok", deadline, lambda: _node_ready(core, FAKE_NODE))

    def _spawn_kwok(self, port: int) -> None:
        config = self.workdir / "kwok.yaml"
        config.write_text(
            "apiVersion: config.kwok.x-k8s.io/v1alpha1\n"
            "kind: KwokConfiguration\n"
            "options:\n"
            # A config file gets no defaults (unlike no config): spell them out.
            "  nodeLeaseDurationSeconds: 40\n"
            "  nodeLeaseParallelism: 4\n"
            "  podPlayStageParallelism: 4\n"
            "  nodePlayStageParallelism: 4\n"
            "  podsOnNodeSyncParallelism: 1\n"
            "  enablePodsOnNodeSyncListPager: true\n"
            "  enablePodsOnNodeSyncStreamWatch: false\n"
            "  enableDebuggingHandlers: true\n"
            "  enableProfilingHandler: false\n"
        )
        self.components.spawn(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--config={config}",
                f"--config={self.bin_dir.parent / 'etc' / 'kwok-stages.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--cidr={FAKE_POD_CIDR}",
                "--node-ip=127.0.0.1",
                f"--server-address=127.0.0.1:{port}",
            ],
            env={"HOME": str(self.workdir)},  # kwok also reads ~/.kwok/kwok.yaml
        )

    def stop(self) -> None:
        """SIGTERM everything (etcd last), SIGKILL what is left; remove the data and keys."""
        if hasattr(self, "components"):
            others = [p.name for p in self.components.procs if p.name != "etcd"]
            self.components.stop(first=others)
        if not self.keep_workdir:
            for sub in ("etcd-data", "pki", "tokens.csv", "apiserver-certs", "certs"):
                target = self.workdir / sub
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)

    def pids(self) -> dict[str, int]:
        return self.components.pids()

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each process."""
        return {p.name: p.rss_bytes() for p in self.components.procs}

    def api_client(self) -> k8s.ApiClient:
        return kc.api_client(self.kubeconfig)


def stop_recorded(pids: Mapping[str, int]) -> None:
    """Stops processes recorded by a control plane started in another (ended) process."""
    for pid in pids.values():
        stop_pid(pid, STOP_TIMEOUT)


def _fake_node(name: str) -> k8s.V1Node:
    """A node managed by kwok (selected by its annotation); no taint, so any pod fits."""
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return k8s.V1Node(
        metadata=k8s.V1ObjectMeta(
            name=name,
            annotations={KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            labels={
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        ),
        status=k8s.V1NodeStatus(capacity=resources, allocatable=resources),
    )


def sa_exists(core: k8s.CoreV1Api, namespace: str, name: str = "default") -> bool:
    try:
        core.read_namespaced_service_account(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def _node_ready(core: k8s.CoreV1Api, name: str) -> bool:
    node = core.read_node(name)
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)
