"""The local node's ingress controller: Traefik (built from its Go module by
``localcluster/tools/build-traefik.sh``) as a pod of its own namespace, serving both Kubernetes
Ingress (IngressClass ``traefik``) and the Gateway API (the standard-channel CRDs from the
``sigs.k8s.io/gateway-api`` module; GatewayClass ``traefik``; a Gateway ``traefik`` in that
namespace with an HTTP listener and an HTTPS one whose certificate the caller gives).

Started by the end-to-end tests (and by ``python -m localcluster up --ingress``), removed by
``remove`` or with the whole node. Reached from the host on its pod address on the bridge.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster import local
from localcluster.controlplane import REPO_ROOT, find_tool, resolve_bin_dir
from localcluster.pki import KeyPair

BUILD_SH = REPO_ROOT / "localcluster" / "tools" / "build-traefik.sh"
NAMESPACE = "traefik"
NAME = "traefik"
INGRESS_CLASS = "traefik"
GATEWAY_CLASS = "traefik"
GATEWAY = "traefik"
HTTP_LISTENER = "http"
HTTPS_LISTENER = "https"
# Traefik's entry points, unprivileged ports (it runs as non-root): a Gateway listener's port
# is the entry point Traefik serves it on.
HTTP_PORT = 8000
HTTPS_PORT = 8443
PING_PORT = 9000
GATEWAY_TLS_SECRET = "traefik-gateway-tls"
UID = 65532


@dataclass(frozen=True)
class Controller:
    address: str
    """The Traefik pod's address: HTTP on ``HTTP_PORT``, HTTPS on ``HTTPS_PORT``."""
    version: str
    namespace: str = NAMESPACE
    ingress_class: str = INGRESS_CLASS
    gateway: str = GATEWAY
    gateway_namespace: str = NAMESPACE

    @property
    def http(self) -> str:
        return f"http://{self.address}:{HTTP_PORT}"

    @property
    def https(self) -> str:
        return f"https://{self.address}:{HTTPS_PORT}"


def build() -> Path:
    """Traefik's binary and the Gateway API CRDs, built once (cached): their directory."""
    out = subprocess.run([str(BUILD_SH)], check=True, capture_output=True, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def _versions(built: Path) -> dict[str, str]:
    lines = (built / "VERSIONS").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def image_ref(built: Path) -> str:
    return f"localhost/restate-examples-traefik:{_versions(built)['TRAEFIK_VERSION']}"


def load_image(built: Path) -> str:
    """An image of the static binary alone (no shell, no package), with podman, imported into
    the node's containerd."""
    ref = image_ref(built)
    env = local.podman_env()
    ctx = local.CACHE / "images" / "traefik-context"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "traefik").write_bytes((built / "bin" / "traefik").read_bytes())
    (ctx / "traefik").chmod(0o755)
    (ctx / "Containerfile").write_text(
        f'FROM scratch\nCOPY traefik /traefik\nUSER {UID}:{UID}\nENTRYPOINT ["/traefik"]\n'
    )
    build = ["podman", "build", "--quiet", "--layers", "--format", "docker", "--tag", ref, str(ctx)]
    subprocess.run(build, check=True, env=env, stdout=subprocess.DEVNULL)
    archive = ctx / "image.tar"
    archive.unlink(missing_ok=True)
    subprocess.run(["podman", "save", "--quiet", "--output", str(archive), ref],
                   check=True, env=env)  # fmt: skip
    try:
        local.load_images(archive)
    finally:
        archive.unlink()
    return ref


# What Traefik's Gateway provider watches (Traefik's own documented RBAC, and ListenerSets).
GATEWAY_KINDS = ["gatewayclasses", "gateways", "httproutes", "grpcroutes", "tcproutes",
                 "tlsroutes", "referencegrants", "backendtlspolicies", "listenersets"]  # fmt: skip


def _rbac() -> list[dict[str, Any]]:
    """Read what both providers route from; write only the status of what they serve."""
    read = ["get", "list", "watch"]
    rules = [
        {"apiGroups": [""], "resources": ["services", "secrets", "namespaces", "configmaps"],
         "verbs": read},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"],
         "verbs": read},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"],
         "verbs": ["update"]},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": GATEWAY_KINDS, "verbs": read},
        {"apiGroups": ["gateway.networking.k8s.io"],
         "resources": [f"{k}/status" for k in GATEWAY_KINDS if k != "referencegrants"],
         "verbs": ["update"]},
    ]  # fmt: skip
    subject = {"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "restate-examples-traefik"}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "restate-examples-traefik"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "restate-examples-traefik"},
         "subjects": [subject]},
    ]  # fmt: skip


def manifests(image: str, tls: KeyPair) -> list[dict[str, Any]]:
    """Traefik's namespace, account, Deployment, Service, classes and Gateway."""
    labels = {"app.kubernetes.io/name": NAME}
    args = [
        # Routes without entry points of their own (an Ingress's) are served on both, over
        # TLS on websecure (with the Ingress's certificate for its host).
        f"--entryPoints.web.address=:{HTTP_PORT}",
        "--entryPoints.web.asDefault=true",
        f"--entryPoints.websecure.address=:{HTTPS_PORT}",
        "--entryPoints.websecure.asDefault=true",
        "--entryPoints.websecure.http.tls=true",
        f"--entryPoints.traefik.address=:{PING_PORT}",
        "--ping=true",
        "--providers.kubernetesIngress=true",
        "--providers.kubernetesGateway=true",
        # No call home: the node's pods talk to the cluster only.
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
        "--accessLog=true",
    ]
    container = {
        "name": "traefik",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "ports": [{"name": "web", "containerPort": HTTP_PORT},
                  {"name": "websecure", "containerPort": HTTPS_PORT},
                  {"name": "ping", "containerPort": PING_PORT}],
        "readinessProbe": {"httpGet": {"path": "/ping", "port": PING_PORT}, "periodSeconds": 2},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"memory": "256Mi"}},
    }  # fmt: skip
    pod_security = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                    "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
    listener_namespaces = {"namespaces": {"from": "All"}}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": NAME, "namespace": NAMESPACE}},
        *_rbac(),
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": GATEWAY_TLS_SECRET, "namespace": NAMESPACE},
         "stringData": {"tls.crt": tls.cert.read_text(), "tls.key": tls.key.read_text()}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"serviceAccountName": NAME,
                                        "enableServiceLinks": False,
                                        "securityContext": pod_security,
                                        "containers": [container],
                                        "volumes": [{"name": "tmp", "emptyDir": {}}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
         "spec": {"selector": labels,
                  "ports": [{"name": "web", "port": 80, "targetPort": HTTP_PORT},
                            {"name": "websecure", "port": 443, "targetPort": HTTPS_PORT}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": INGRESS_CLASS},
         "spec": {"controller": "traefik.io/ingress-controller"}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
         "metadata": {"name": GATEWAY_CLASS},
         "spec": {"controllerName": "traefik.io/gateway-controller"}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": GATEWAY, "namespace": NAMESPACE},
         "spec": {"gatewayClassName": GATEWAY_CLASS,
                  "listeners": [
                      {"name": HTTP_LISTENER, "protocol": "HTTP", "port": HTTP_PORT,
                       "allowedRoutes": listener_namespaces},
                      {"name": HTTPS_LISTENER, "protocol": "HTTPS", "port": HTTPS_PORT,
                       "tls": {"mode": "Terminate",
                               "certificateRefs": [{"name": GATEWAY_TLS_SECRET}]},
                       "allowedRoutes": listener_namespaces}]}},
    ]  # fmt: skip


class Kubectl:
    def __init__(self, kubeconfig: Path, bin_dir: Path | None = None) -> None:
        self.cmd = [find_tool(bin_dir or resolve_bin_dir(), "kubectl"), "--kubeconfig",
                    str(kubeconfig)]  # fmt: skip

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run([*self.cmd, *args], input=input, capture_output=True, text=True,
                              timeout=300, check=False)  # fmt: skip
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr}{proc.stdout}")
        return proc.stdout


def deploy(kubeconfig: Path, tls: KeyPair, *, timeout: float = 180) -> Controller:
    """Builds (cached) and starts Traefik on the running local node, with the Gateway API
    CRDs; ``tls`` is the Gateway HTTPS listener's certificate. Returns once the Gateway is
    programmed and the pod Ready."""
    built = build()
    kubectl = Kubectl(kubeconfig)
    crds = str(built / "crds" / "standard")
    kubectl("apply", "--server-side", "-f", crds)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)
    ref = load_image(built)
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests(ref, tls)})
    kubectl("apply", "-f", "-", input=body)
    kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{NAME}", f"--timeout={timeout:.0f}s")
    kubectl("-n", NAMESPACE, "wait", "--for=condition=Programmed", f"gateway/{GATEWAY}",
            f"--timeout={timeout:.0f}s")  # fmt: skip
    address = ""
    deadline = time.monotonic() + 30
    while not address and time.monotonic() < deadline:
        address = kubectl(
            "-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/name={NAME}",
            "--field-selector=status.phase=Running", "-o", "jsonpath={.items[0].status.podIP}",
            check=False,
        ).strip()  # fmt: skip
        time.sleep(0 if address else 1)
    if not address:
        raise RuntimeError("the Traefik pod has no address")
    return Controller(address=address, version=_versions(built)["TRAEFIK_VERSION"])


def remove(kubeconfig: Path) -> None:
    """Removes Traefik, its classes, Gateway and RBAC, and the Gateway API CRDs."""
    kubectl = Kubectl(kubeconfig)
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true",
            "--timeout=120s", check=False)  # fmt: skip
    kubectl("delete", "ingressclass", INGRESS_CLASS, "--ignore-not-found", check=False)
    kubectl("delete", "gatewayclass", GATEWAY_CLASS, "--ignore-not-found", check=False)
    kubectl("delete", "clusterrolebinding,clusterrole", "restate-examples-traefik",
            "--ignore-not-found", check=False)  # fmt: skip
    built = subprocess.run([str(BUILD_SH), "--print-dir"], capture_output=True, text=True)
    if built.returncode == 0:
        crds = Path(built.stdout.strip()) / "crds" / "standard"
        kubectl("delete", "-f", str(crds), "--ignore-not-found", "--wait=false", check=False)
