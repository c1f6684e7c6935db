"""The real node: containerd 2.x (with its CRI plugin, built from its Go module) and Debian's
runc, the CNI bridge, a kubelet and kube-proxy from the pinned Kubernetes modules, CoreDNS for
Service DNS, and local-path-provisioner for a default StorageClass (what kind ships).

Every file the node writes lives under its ``workdir`` (and its sockets under ``rundir``);
what it changes elsewhere on the host is listed and undone by ``hoststate``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s
from kubernetes.client import ApiException

from localcluster import hoststate
from localcluster import kubeconfig as kc
from localcluster.controlplane import SERVICE_CIDR, Components, ControlPlane, http_ok

NODE_NAME = "restate-examples-node"
BRIDGE = "rxbr0"
POD_SUBNET = "10.244.0.0/24"
NODE_IP = "10.244.0.1"  # the bridge's address: gateway of the pods, the node's InternalIP
CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "localhost/restate-examples-pause:3.0"
HELPER_IMAGE = "localhost/restate-examples-base:bookworm"
FORWARD_CHAIN = "RX-NODE-FORWARD"
POLICY_HEALTH_PORT = 20244
LOCAL_PATH_NAMESPACE = "local-path-storage"
STORAGE_CLASS = "local-path"


@dataclass
class NodePaths:
    workdir: Path
    rundir: Path
    bin_dir: Path
    """The built binaries (``localcluster/tools/build.sh``): containerd, its shim, ctr..."""

    @property
    def containerd_socket(self) -> Path:
        return self.rundir / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.workdir / "kubelet"

    @property
    def volumes(self) -> Path:
        return self.workdir / "volumes"


def setup_network() -> None:
    """The bridge the pods hang on, with the node's address, before anything binds to it; and
    a forward rule that keeps pod traffic on this machine: pods reach each other, the node
    and Services (DNAT'ed back onto the bridge), never another network."""
    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        hoststate.run("ip", "link", "add", BRIDGE, "type", "bridge", check=True)
    prefix = POD_SUBNET.split("/")[1]
    hoststate.run("ip", "addr", "replace", f"{NODE_IP}/{prefix}", "dev", BRIDGE, check=True)
    hoststate.run("ip", "link", "set", BRIDGE, "up", check=True)
    hoststate.run("iptables", "-w", "-N", FORWARD_CHAIN)
    hoststate.run("iptables", "-w", "-F", FORWARD_CHAIN)
    hoststate.run(
        "iptables",
        "-w",
        "-A",
        FORWARD_CHAIN,
        "-i",
        BRIDGE,
        "!",
        "-o",
        BRIDGE,
        "-j",
        "DROP",
        check=True,
    )
    hoststate.run("iptables", "-w", "-I", "FORWARD", "1", "-j", FORWARD_CHAIN, check=True)


def _wait_socket(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as s:
        return s.connect_ex(str(path)) == 0


def start_containerd(c: Components, paths: NodePaths) -> None:
    state = paths.rundir / "containerd"
    cni = paths.workdir / "cni"
    (cni / "net.d").mkdir(parents=True, exist_ok=True)
    (cni / "net.d" / "10-restate-examples.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "0.4.0",
                "name": "restate-examples",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": BRIDGE,
                        "isGateway": True,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                            "dataDir": str(cni / "ipam"),
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            },
            indent=2,
        )
    )
    runc = shutil.which("runc")
    if runc is None:
        raise FileNotFoundError("runc is missing: run `make node-packages`")
    config = paths.workdir / "containerd.toml"
    # containerd 2.4's configuration format 4 (3 is migrated with a warning): the CRI plugin
    # split in images and runtime, the servers' sockets as plugins.
    config.write_text(
        f"""version = 4
root = "{paths.workdir / "containerd"}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs"]
[plugins."io.containerd.server.v1.grpc"]
  address = "{paths.containerd_socket}"
[plugins."io.containerd.server.v1.ttrpc"]
  address = "{state / "containerd.sock.ttrpc"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{paths.workdir / "containerd-opt"}"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"
[plugins."io.containerd.cri.v1.runtime"]
  # Without CAP_SYS_RESOURCE the kubelet's negative OOM scores are refused: clamp them.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      # This build's shim, not one found on $PATH first (Debian's 1.6 shim fails to start
      # under containerd 2.4: "type with url <sandbox id>: not found").
      runtime_path = "{paths.bin_dir / "containerd-shim-runc-v2"}"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        # cgroup v1 (hybrid) and no systemd here: the cgroupfs driver, as the kubelet's.
        SystemdCgroup = false
        BinaryName = "{runc}"
        Root = "{paths.rundir / "runc"}"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{cni / "net.d"}"
"""
    )
    c.spawn("containerd", [f"--config={config}"], binary=paths.bin_dir / "containerd")
    c.wait("containerd", time.monotonic() + 60, lambda: _wait_socket(paths.containerd_socket))


def ctr(paths: NodePaths, *args: str, timeout: float = 600) -> str:
    """Runs containerd's ``ctr`` in the Kubernetes namespace of the node's containerd."""
    proc = subprocess.run(
        [
            str(paths.bin_dir / "ctr"),
            "--address",
            str(paths.containerd_socket),
            "--namespace",
            "k8s.io",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def load_images(paths: NodePaths, archive: Path) -> list[str]:
    """Imports an image archive (``localcluster/images/images.sh --save``); returns the node's
    image refs."""
    ctr(paths, "images", "import", "--no-unpack", str(archive))
    return ctr(paths, "images", "list", "--quiet").split()


def start_kubelet(c: Components, paths: NodePaths, cp: ControlPlane) -> None:
    pki = cp.ca.issue(
        "kubelet-client",
        common_name=f"system:node:{NODE_NAME}",
        organizations=("system:nodes",),
    )
    kubeconfig = kc.write(
        paths.workdir / "kubelet.kubeconfig",
        kc.cert_kubeconfig(cp.server, cp.ca.pem, pki.cert, pki.key, user="kubelet"),
    )
    resolv = paths.workdir / "resolv.conf"
    resolv.write_text(f"nameserver {CLUSTER_DNS}\n")
    config = paths.workdir / "kubelet.yaml"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "address": NODE_IP,
                "port": 10250,
                "readOnlyPort": 0,
                "healthzBindAddress": "127.0.0.1",
                "healthzPort": 10248,
                "authentication": {
                    "anonymous": {"enabled": False},
                    "webhook": {"enabled": True},
                    "x509": {"clientCAFile": str(cp.ca.cert)},
                },
                "authorization": {"mode": "Webhook"},
                "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
                # This machine: cgroup v1 (hybrid), no systemd, no swap accounting, and no
                # CAP_SYS_RESOURCE (no negative OOM score for the kubelet itself).
                "cgroupDriver": "cgroupfs",
                "failCgroupV1": False,
                "failSwapOn": False,
                "oomScoreAdj": 0,
                "clusterDNS": [CLUSTER_DNS],
                "clusterDomain": CLUSTER_DOMAIN,
                "resolvConf": str(resolv),
                # Imported images cannot be pulled back: never garbage-collect them.
                "imageGCHighThresholdPercent": 100,
                "imageGCLowThresholdPercent": 99,
                "evictionHard": {
                    "memory.available": "100Mi",
                    "nodefs.available": "2%",
                    "imagefs.available": "2%",
                },
                "podLogsDir": str(paths.workdir / "pod-logs"),
                "serializeImagePulls": False,
                "staticPodPath": "",
                "maxPods": 110,
            },
            indent=2,
        )
    )
    c.spawn(
        "kubelet",
        [
            f"--config={config}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={paths.kubelet_root}",
            f"--cert-dir={paths.kubelet_root / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--v=1",
        ],
    )


def start_kube_proxy(c: Components, paths: NodePaths, cp: ControlPlane) -> None:
    pki = cp.ca.issue("kube-proxy", common_name="system:kube-proxy")
    kubeconfig = kc.write(
        paths.workdir / "kube-proxy.kubeconfig",
        kc.cert_kubeconfig(cp.server, cp.ca.pem, pki.cert, pki.key, user="kube-proxy"),
    )
    config = paths.workdir / "kube-proxy.yaml"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "clientConnection": {"kubeconfig": str(kubeconfig)},
                "mode": "iptables",
                "clusterCIDR": POD_SUBNET,
                "hostnameOverride": NODE_NAME,
                "bindAddress": NODE_IP,
                "healthzBindAddress": "127.0.0.1:10256",
                "metricsBindAddress": "127.0.0.1:10249",
                "nodePortAddresses": [f"{NODE_IP}/32"],
                # 0: leave the host's conntrack sysctls alone; no route_localnet either.
                "conntrack": {
                    "maxPerCore": 0,
                    "min": 0,
                    "tcpEstablishedTimeout": "0s",
                    "tcpCloseWaitTimeout": "0s",
                },
                "iptables": {"localhostNodePorts": False},
            },
            indent=2,
        )
    )
    c.spawn("kube-proxy", [f"--config={config}"])
    c.wait(
        "kube-proxy",
        time.monotonic() + 60,
        lambda: http_ok("http://127.0.0.1:10256/healthz"),
    )


def start_coredns(c: Components, paths: NodePaths, cp: ControlPlane) -> None:
    """CoreDNS on the node's address, answering for the cluster domain only (nothing is
    forwarded: pods here talk to the cluster, not the world), behind the kube-dns Service."""
    corefile = paths.workdir / "Corefile"
    corefile.write_text(
        f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:8180
    ready 127.0.0.1:8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {cp.kubeconfig} admin
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loadbalance
}}
.:53 {{
    bind {NODE_IP}
    errors
}}
"""
    )
    c.spawn("coredns", [f"-conf={corefile}"])
    with cp.api_client() as api:
        core = k8s.CoreV1Api(api)
        ports = [
            k8s.V1ServicePort(name="dns", port=53, protocol="UDP", target_port=53),
            k8s.V1ServicePort(name="dns-tcp", port=53, protocol="TCP", target_port=53),
        ]
        _create(
            core.create_namespaced_service,
            "kube-system",
            k8s.V1Service(
                metadata=k8s.V1ObjectMeta(name="kube-dns", labels={"k8s-app": "kube-dns"}),
                spec=k8s.V1ServiceSpec(cluster_ip=CLUSTER_DNS, ports=ports),
            ),
        )
        discovery = k8s.DiscoveryV1Api(api)
        _create(
            discovery.create_namespaced_endpoint_slice,
            "kube-system",
            k8s.V1EndpointSlice(
                metadata=k8s.V1ObjectMeta(
                    name="kube-dns-node",
                    labels={
                        "kubernetes.io/service-name": "kube-dns",
                        "endpointslice.kubernetes.io/managed-by": "restate-examples-node",
                    },
                ),
                address_type="IPv4",
                endpoints=[k8s.V1Endpoint(addresses=[NODE_IP])],
                ports=[
                    k8s.DiscoveryV1EndpointPort(name="dns", port=53, protocol="UDP"),
                    k8s.DiscoveryV1EndpointPort(name="dns-tcp", port=53, protocol="TCP"),
                ],
            ),
        )
    c.wait("coredns", time.monotonic() + 60, lambda: http_ok("http://127.0.0.1:8181/ready"))


def start_local_path(c: Components, paths: NodePaths, cp: ControlPlane) -> None:
    """local-path-provisioner (as kind runs it): a default StorageClass whose volumes are
    directories under the node's workdir, made and removed by helper pods."""
    paths.volumes.mkdir(parents=True, exist_ok=True)
    ns = LOCAL_PATH_NAMESPACE
    helper_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "containers": [
                {"name": "helper-pod", "image": HELPER_IMAGE, "imagePullPolicy": "IfNotPresent"}
            ],
        },
    }
    with cp.api_client() as api:
        core = k8s.CoreV1Api(api)
        _create(core.create_namespace, None, k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
        _create(
            core.create_namespaced_service_account,
            ns,
            k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="local-path-provisioner")),
        )
        _create(
            core.create_namespaced_config_map,
            ns,
            k8s.V1ConfigMap(
                metadata=k8s.V1ObjectMeta(name="local-path-config"),
                data={
                    "config.json": json.dumps(
                        {
                            "nodePathMap": [
                                {
                                    "node": "DEFAULT_PATH_FOR_NON_LISTED_NODES",
                                    "paths": [str(paths.volumes)],
                                }
                            ]
                        }
                    ),
                    "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
                    "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
                    "helperPod.yaml": json.dumps(helper_pod),
                },
            ),
        )
        _create(
            k8s.StorageV1Api(api).create_storage_class,
            None,
            k8s.V1StorageClass(
                metadata=k8s.V1ObjectMeta(
                    name=STORAGE_CLASS,
                    annotations={"storageclass.kubernetes.io/is-default-class": "true"},
                ),
                provisioner="rancher.io/local-path",
                reclaim_policy="Delete",
                volume_binding_mode="WaitForFirstConsumer",
            ),
        )
    c.spawn(
        "local-path-provisioner",
        [
            "start",
            f"--kubeconfig={cp.kubeconfig}",
            f"--namespace={ns}",
            "--configmap-name=local-path-config",
            "--service-account-name=local-path-provisioner",
            "--provisioner-name=rancher.io/local-path",
            f"--helper-image={HELPER_IMAGE}",
        ],
    )


def start_policy_controller(c: Components, paths: NodePaths, cp: ControlPlane) -> None:
    """kube-router with only its firewall part: it turns the cluster's NetworkPolicies into
    iptables rules and ipsets on this node (a plain CNI bridge enforces none)."""
    c.spawn(
        "kube-router",
        [
            f"--kubeconfig={cp.kubeconfig}",
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            "--enable-cni=false",
            "--enable-ipv6=false",
            f"--hostname-override={NODE_NAME}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--health-port={POLICY_HEALTH_PORT}",
            "--metrics-port=0",
        ],
    )
    c.wait(
        "kube-router",
        time.monotonic() + 60,
        lambda: http_ok(f"http://127.0.0.1:{POLICY_HEALTH_PORT}/healthz"),
    )


def _create(create: object, namespace: str | None, body: object) -> None:
    """Creates an object, tolerating one that exists (a reused control plane)."""
    try:
        if namespace is None:
            create(body)  # type: ignore[operator]
        else:
            create(namespace, body)  # type: ignore[operator]
    except ApiException as e:
        if e.status != 409:
            raise


def node_ready(cp: ControlPlane) -> bool:
    with cp.api_client() as api:
        try:
            node = k8s.CoreV1Api(api).read_node(NODE_NAME)
        except ApiException:
            return False
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)
