"""pytest plugin: a real Kubernetes control plane for the test suite, without Docker.

The session fixture ``kube`` starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake nodes whose pods become Running/Ready) on 127.0.0.1 with
free ports, from binaries built by ``tests/controlplane/build.sh`` (``make controlplane``).
If ``RESTATE_EXAMPLES_KUBECONFIG`` is set, that existing cluster (kind or real) is used
instead and nothing is started.

The API server runs with RBAC, service-account token signing and a static admin token
(``system:masters``). The fixture yields a :class:`Kube` with an admin kubeconfig,
``api_client()``, ``as_service_account()``, ``kubectl()``/``helm()`` helpers and
namespace helpers; the ``namespace`` fixture gives each test a fresh namespace.

Environment:
  RESTATE_EXAMPLES_KUBECONFIG       use this cluster instead of starting one
  RESTATE_EXAMPLES_CACHE            cache root used by build.sh (binaries)
  RESTATE_EXAMPLES_CONTROLPLANE_BIN directory with the binaries (skips build.sh)
  RESTATE_EXAMPLES_KEEP_KUBE=1      keep the work dir (etcd data, logs) after the session
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client import ApiException

__all__ = [
    "ControlPlane",
    "Kube",
    "KubeCommandError",
    "KubeStartupError",
    "kube",
    "namespace",
]

ENV_KUBECONFIG = "RESTATE_EXAMPLES_KUBECONFIG"
ENV_BIN_DIR = "RESTATE_EXAMPLES_CONTROLPLANE_BIN"
ENV_KEEP = "RESTATE_EXAMPLES_KEEP_KUBE"

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SH = REPO_ROOT / "tests" / "controlplane" / "build.sh"

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
FAKE_NODE = "kwok-node-0"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"

STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0


class KubeStartupError(RuntimeError):
    """The control plane did not become healthy; the message holds the logs' last lines."""


class KubeCommandError(subprocess.CalledProcessError):
    """kubectl/helm exited non-zero; ``str()`` includes its stderr."""

    def __str__(self) -> str:
        cmd = " ".join(self.cmd) if isinstance(self.cmd, list) else str(self.cmd)
        return f"{cmd!r} exited {self.returncode}:\n{self.stderr or ''}{self.stdout or ''}"


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class _Pki:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    ca_key: Path
    sa_key: Path
    sa_pub: Path


def _write_pki(directory: Path) -> _Pki:
    """A CA, an API server serving cert for 127.0.0.1/localhost and a SA signing key."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "restate-examples-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    serving_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.DNSName("kubernetes.default.svc.cluster.local"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(next(ipaddress.IPv4Network(SERVICE_CIDR).hosts())),
    ]
    serving_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pki = _Pki(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
    pki.ca_cert.write_bytes(_pem_cert(ca_cert))
    pki.serving_cert.write_bytes(_pem_cert(serving_cert) + _pem_cert(ca_cert))
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for path, key in (
        (pki.ca_key, ca_key),
        (pki.serving_key, serving_key),
        (pki.sa_key, sa_key),
    ):
        path.write_bytes(_pem_key(key))
        path.chmod(0o600)
    return pki


def token_kubeconfig(
    server: str, ca_pem: bytes | None, token: str, *, user: str, namespace: str = "default"
) -> dict[str, Any]:
    """A kubeconfig (as a dict; JSON is valid YAML) authenticating with a bearer token."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "restate-examples", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": user,
                "context": {"cluster": "restate-examples", "user": user, "namespace": namespace},
            }
        ],
        "current-context": user,
    }


def _write_json(path: Path, data: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.chmod(0o600)
    return path


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Kill the child if the test process dies without tearing down (Linux only)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def client_from_kubeconfig(path: Path) -> k8s.ApiClient:
    """A new ``kubernetes.client.ApiClient`` for a kubeconfig file."""
    api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(path), persist_config=False
    )
    return api


def resolve_bin_dir(*, build: bool = False) -> Path:
    """The directory with the built binaries: $RESTATE_EXAMPLES_CONTROLPLANE_BIN, or the
    cache of ``tests/controlplane/build.sh`` (built first if ``build`` is true)."""
    override = os.environ.get(ENV_BIN_DIR)
    if override:
        return Path(override)
    cmd = [str(BUILD_SH)] if build else [str(BUILD_SH), "--print-bin-dir"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise KubeStartupError(
            "the control-plane binaries are not built: run `make controlplane` "
            "(tests/controlplane/build.sh; a cold build takes 10-30 minutes)\n" + proc.stderr
        )
    return Path(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- processes


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    log_file: IO[bytes]


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on loopback.

    Usable outside pytest: ``with ControlPlane(bin_dir) as cp: ...``.
    """

    bin_dir: Path
    workdir: Path | None = None
    keep_workdir: bool = False
    startup_timeout: float = STARTUP_TIMEOUT
    procs: list[_Proc] = field(default_factory=list)
    kubeconfig: Path = field(init=False)
    server: str = field(init=False)
    ca_pem: bytes = field(init=False)
    admin_token: str = field(init=False)
    _owns_workdir: bool = field(init=False, default=False)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="restate-kube-"))
            self._owns_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start(self.workdir)
        except BaseException:
            self.stop()
            raise

    def _start(self, work: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout
        pki = _write_pki(work / "pki")
        self.ca_pem = pki.ca_cert.read_bytes()
        self.admin_token = secrets.token_urlsafe(32)
        tokens = work / "tokens.csv"
        tokens.write_text(f'{self.admin_token},admin,admin-uid,"system:masters"\n')
        tokens.chmod(0o600)

        etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.server = f"https://127.0.0.1:{api_port}"
        self.kubeconfig = _write_json(
            work / "admin.kubeconfig",
            token_kubeconfig(self.server, self.ca_pem, self.admin_token, user="admin"),
        )

        self._spawn(
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
        self._wait("etcd", deadline, lambda: self._http_ok(f"{etcd_url}/health", "true"))

        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={work / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                # Front-proxy settings: the components' delegated authn expects them.
                f"--requestheader-client-ca-file={pki.ca_cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--token-auth-file={tokens}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )
        self._wait("kube-apiserver", deadline, lambda: self._http_ok(f"{self.server}/readyz", "ok"))

        kcm_port, sched_port, kwok_port = free_port(), free_port(), free_port()
        kc = f"--kubeconfig={self.kubeconfig}"
        delegated = [
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--cert-dir={work / 'certs'}",
        ]
        self._spawn(
            "kube-controller-manager",
            [
                kc,
                *delegated,
                f"--secure-port={kcm_port}",
                "--controllers=*",
                "--leader-elect=false",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--use-service-account-credentials=false",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [kc, *delegated, f"--secure-port={sched_port}", "--leader-elect=false"],
        )
        kwok_config = work / "kwok.yaml"
        kwok_config.write_text(
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
        self._spawn(
            "kwok",
            [
                kc,
                f"--config={kwok_config}",
                f"--config={self.bin_dir.parent / 'etc' / 'kwok-stages.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
                f"--server-address=127.0.0.1:{kwok_port}",
            ],
            env={"HOME": str(work)},  # kwok also reads ~/.kwok/kwok.yaml
        )
        for name, port in (("kube-controller-manager", kcm_port), ("kube-scheduler", sched_port)):
            url = f"https://127.0.0.1:{port}/healthz"
            self._wait(name, deadline, functools.partial(self._http_ok, url))
        self._wait("kwok", deadline, lambda: self._http_ok(f"http://127.0.0.1:{kwok_port}/healthz"))

        with self.api_client() as api:
            core = k8s.CoreV1Api(api)
            core.create_node(_fake_node(FAKE_NODE))
            self._wait("kube-controller-manager", deadline, lambda: _sa_exists(core, "default"))
            self._wait("kwok", deadline, lambda: _node_ready(core, FAKE_NODE))

    def _spawn(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        assert self.workdir is not None
        binary = self.bin_dir / name
        if not os.access(binary, os.X_OK):
            raise KubeStartupError(f"{binary} is missing: run `make controlplane`")
        log = self.workdir / f"{name}.log"
        log_file = log.open("wb")
        popen = subprocess.Popen(
            [str(binary), *args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=_set_pdeathsig if sys.platform == "linux" else None,
        )
        self.procs.append(_Proc(name, popen, log, log_file))

    def _wait(self, name: str, deadline: float, ready: Callable[[], bool]) -> None:
        last_error = ""
        while True:
            for proc in self.procs:
                if proc.popen.poll() is not None:
                    raise KubeStartupError(
                        f"{proc.name} exited with {proc.popen.returncode} while waiting for "
                        f"{name}; last lines of {proc.log}:\n{tail(proc.log)}"
                    )
            try:
                if ready():
                    return
            except Exception as e:
                last_error = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                raise KubeStartupError(
                    f"{name} not ready after {self.startup_timeout:.0f}s ({last_error}); "
                    f"last lines of {name}.log:\n{tail(self._log(name))}"
                )
            time.sleep(0.2)

    def _log(self, name: str) -> Path:
        assert self.workdir is not None
        return self.workdir / f"{name}.log"

    def _http_ok(self, url: str, body: str | None = None) -> bool:
        headers: dict[str, str] = {}
        verify: ssl.SSLContext | bool = False  # components' self-signed certs; loopback only
        if url.startswith(self.server):
            headers["Authorization"] = f"Bearer {self.admin_token}"
            verify = ssl.create_default_context(cadata=self.ca_pem.decode())
        r = httpx.get(url, headers=headers, verify=verify, timeout=2.0)
        return r.status_code == 200 and (body is None or body in r.text)

    def stop(self) -> None:
        """SIGTERM everything (etcd last), SIGKILL what is left, remove the work dir."""
        etcd = [p for p in self.procs if p.name == "etcd"]
        others = [p for p in self.procs if p.name != "etcd"]
        for group in (others, etcd):
            for p in group:
                if p.popen.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.popen.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            for p in group:
                try:
                    p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        p.popen.kill()
                    p.popen.wait()
                p.log_file.close()
        self.procs.clear()
        if self.workdir is not None and not self.keep_workdir:
            if self._owns_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:  # logs stay in the caller's dir; the data and keys go
                for sub in ("etcd-data", "pki", "tokens.csv"):
                    target = self.workdir / sub
                    if target.is_dir():
                        shutil.rmtree(target, ignore_errors=True)
                    else:
                        target.unlink(missing_ok=True)

    # ----------------------------------------------------------------- inspection

    def pids(self) -> dict[str, int]:
        return {p.name: p.popen.pid for p in self.procs}

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each process (from /proc, Linux only)."""
        out: dict[str, int] = {}
        for name, pid in self.pids().items():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[name] = int(line.split()[1]) * 1024
        return out

    def api_client(self) -> k8s.ApiClient:
        return client_from_kubeconfig(self.kubeconfig)


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


def _sa_exists(core: k8s.CoreV1Api, namespace: str, name: str = "default") -> bool:
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


# --------------------------------------------------------------------------- public API


@dataclass
class Kube:
    """Handle on the test cluster (yielded by the ``kube`` fixture)."""

    kubeconfig: Path
    """Admin kubeconfig (system:masters)."""
    bin_dir: Path | None
    """Directory with kubectl, helm, kube-apiserver, ... (None: use $PATH)."""
    workdir: Path
    """Scratch dir for generated kubeconfigs and helm state."""
    control_plane: ControlPlane | None = None
    """The local control plane, or None when using RESTATE_EXAMPLES_KUBECONFIG."""
    _sa_kubeconfigs: dict[tuple[str, str], Path] = field(default_factory=dict)

    # ----------------------------------------------------------------- clients

    def api_client(self) -> k8s.ApiClient:
        """A new ``kubernetes.client.ApiClient`` authenticated as admin."""
        return client_from_kubeconfig(self.kubeconfig)

    def service_account_token(
        self,
        namespace: str,
        name: str,
        *,
        expiration_seconds: int = 3600,
        audiences: Sequence[str] = (),
    ) -> str:
        """A token for the ServiceAccount, issued through the TokenRequest API."""
        body = k8s.AuthenticationV1TokenRequest(
            spec=k8s.V1TokenRequestSpec(
                audiences=list(audiences), expiration_seconds=expiration_seconds
            )
        )
        with self.api_client() as api:
            resp = k8s.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, body)
        if resp.status is None or not resp.status.token:
            raise RuntimeError(f"TokenRequest for {namespace}/{name} returned no token")
        return resp.status.token

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig authenticating as system:serviceaccount:<namespace>:<name> (for
        kubectl/helm/operators). The ServiceAccount must exist; its token lasts 1 hour."""
        key = (namespace, name)
        cached = self._sa_kubeconfigs.get(key)
        if cached is not None and cached.exists():
            return cached
        cluster = self._admin_cluster()
        token = self.service_account_token(namespace, name)
        kubeconfig = token_kubeconfig(
            cluster["server"], None, token, user=f"{namespace}-{name}", namespace=namespace
        )
        kubeconfig["clusters"][0]["cluster"] = cluster
        path = _write_json(self.workdir / f"sa-{namespace}-{name}.kubeconfig", kubeconfig)
        self._sa_kubeconfigs[key] = path
        return path

    def as_service_account(self, namespace: str, name: str) -> k8s.ApiClient:
        """A new ``kubernetes.client.ApiClient`` authenticated as that ServiceAccount
        (see :meth:`service_account_kubeconfig` for the kubeconfig file)."""
        return client_from_kubeconfig(self.service_account_kubeconfig(namespace, name))

    def _admin_cluster(self) -> dict[str, Any]:
        view = json.loads(
            self.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
        )
        cluster: dict[str, Any] = view["clusters"][0]["cluster"]
        return cluster

    # ----------------------------------------------------------------- CLIs

    def _tool(self, name: str) -> str:
        if self.bin_dir is not None and (self.bin_dir / name).exists():
            return str(self.bin_dir / name)
        found = shutil.which(name)
        if found is None:
            raise FileNotFoundError(f"{name} not found: run `make controlplane`")
        return found

    def _run(
        self,
        tool: str,
        args: Sequence[str],
        *,
        check: bool,
        input: str | None,
        kubeconfig: Path | None,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self._tool(tool), *args]
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {}), "KUBECONFIG": str(kubeconfig or self.kubeconfig)},
            check=False,
        )
        if check and proc.returncode != 0:
            raise KubeCommandError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: Path | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl (admin unless ``kubeconfig`` is given); raises
        :class:`KubeCommandError` on failure unless ``check=False``."""
        return self._run(
            "kubectl", args, check=check, input=input, kubeconfig=kubeconfig, timeout=timeout
        )

    def helm(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: Path | None = None,
        timeout: float = 300.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run helm v4 with its cache/config/data dirs in the work dir (no $HOME state)."""
        helm_home = self.workdir / "helm"
        env = {
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }
        return self._run(
            "helm",
            args,
            check=check,
            input=input,
            kubeconfig=kubeconfig,
            timeout=timeout,
            env=env,
        )

    # ----------------------------------------------------------------- namespaces

    def create_namespace(self, prefix: str = "test", *, wait_for_sa: bool = True) -> str:
        """Create a namespace ``<prefix>-<random>`` and wait for its default ServiceAccount."""
        slug = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:50] or "test"
        name = f"{slug}-{uuid.uuid4().hex[:6]}"
        with self.api_client() as api:
            core = k8s.CoreV1Api(api)
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
            if wait_for_sa:
                deadline = time.monotonic() + 60
                while not _sa_exists(core, name):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no default ServiceAccount in namespace {name}")
                    time.sleep(0.1)
        return name

    def delete_namespace(self, name: str) -> None:
        with self.api_client() as api, contextlib.suppress(ApiException):
            k8s.CoreV1Api(api).delete_namespace(name)

    @contextlib.contextmanager
    def temp_namespace(self, prefix: str = "test") -> Iterator[str]:
        name = self.create_namespace(prefix)
        try:
            yield name
        finally:
            self.delete_namespace(name)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """The session's Kubernetes cluster (local control plane or RESTATE_EXAMPLES_KUBECONFIG)."""
    workdir = tmp_path_factory.mktemp("kube")
    external = os.environ.get(ENV_KUBECONFIG)
    if external:
        try:
            bin_dir: Path | None = resolve_bin_dir()
        except KubeStartupError:
            bin_dir = None  # kubectl/helm from $PATH
        yield Kube(kubeconfig=Path(external), bin_dir=bin_dir, workdir=workdir)
        return
    try:
        bin_dir = resolve_bin_dir()
    except KubeStartupError as e:
        pytest.fail(str(e), pytrace=False)
    cp = ControlPlane(
        bin_dir, workdir=workdir / "controlplane", keep_workdir=bool(os.environ.get(ENV_KEEP))
    )
    with cp:
        yield Kube(kubeconfig=cp.kubeconfig, bin_dir=bin_dir, workdir=workdir, control_plane=cp)


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    with kube.temp_namespace(request.node.name) as name:
        yield name
