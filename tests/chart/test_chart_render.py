"""The chart, rendered by helm without a cluster: lint, defaults, each documented switch,
and values the schema (or the chart's own checks) must reject with a clear message."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib

import catalog
import pytest
import yaml
from chart.chartkit import (
    CHART,
    EXAMPLES,
    FULLNAME,
    NAMESPACE,
    RFC8032_PEM,
    RFC8032_PUBLIC,
    Helm,
    Obj,
    env_of,
    hook_of,
    named,
    of_kind,
    pod_specs,
)

from testkit.restate import install_restate


@pytest.fixture(scope="module")
def default(helm: Helm) -> list[Obj]:
    return helm.template()


def test_lint(helm: Helm) -> None:
    proc = helm.run("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    "sets",
    [
        ["restate.replicated.enabled=true"],
        ["restate.ingress.enabled=true"],
        ["examples.defaults.autoscaling.enabled=true"],
        ["networkPolicy.enabled=false", "identity.enabled=false", "operator.enabled=false"],
    ],
)
def test_lint_switches(helm: Helm, sets: list[str]) -> None:
    args = [a for s in sets for a in ("--set", s)]
    proc = helm.run("lint", "--strict", str(CHART), *args)
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


def test_default_objects(default: list[Obj]) -> None:
    kinds = sorted({o["kind"] for o in default})
    assert kinds == sorted(
        [
            "ClusterRole",  # the pre-upgrade CRD hook only: get/patch of the two CRDs
            "ClusterRoleBinding",
            "ConfigMap",  # the CRDs for that hook
            "Deployment",
            "Job",
            "NetworkPolicy",
            "Pod",
            "RestateWorkload",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "StatefulSet",
        ]
    )
    names = {d["metadata"]["name"] for d in of_kind(default, "Deployment")}
    assert names == {f"{FULLNAME}-operator"}  # the examples' pods: RestateWorkloads
    workloads = {w["metadata"]["name"] for w in of_kind(default, "RestateWorkload")}
    assert workloads == {f"{FULLNAME}-{e}" for e in EXAMPLES}
    assert not of_kind(default, "Ingress"), "the ingress is off by default"
    assert not of_kind(default, "ServiceMonitor"), "no ServiceMonitor without its CRD"
    assert not of_kind(default, "HorizontalPodAutoscaler")
    assert not of_kind(default, "PodDisruptionBudget")


def test_standard_labels(default: list[Obj]) -> None:
    for o in default:
        labels = o["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/component",
            "helm.sh/chart",
        ):
            assert key in labels, f"{o['kind']} {o['metadata']['name']} lacks label {key}"


def test_restate_statefulset(default: list[Obj]) -> None:
    sts = named(default, "StatefulSet", f"{FULLNAME}-restate")
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["serviceName"] == f"{FULLNAME}-restate-cluster"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "storage"
    # helm uninstall deletes the volume too (restate.persistence.keepOnUninstall keeps it)
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete",
        "whenScaled": "Retain",
    }
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "docker.restate.dev/restatedev/restate:1.7.12"
    assert {"mountPath": "/restate-data", "name": "storage"} in container["volumeMounts"]
    probe = container["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/restate/health", "ingress")
    assert container["resources"]["requests"] and container["resources"]["limits"]
    env = env_of(container)
    key_file = env["RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE"]["value"]
    assert key_file == "/etc/restate/identity/private.pem"
    assert env["DO_NOT_TRACK"]["value"] == "1"
    assert "RESTATE_AUTO_PROVISION" not in env


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        # The chart's default: the examples' steps fail on purpose, so retries stay quick.
        ((), {"initial-interval": "100ms", "max-interval": "5s", "max-attempts": 70}),
        (
            ("restate.retryPolicy.maxInterval=1m 30s", "restate.retryPolicy.onMaxAttempts=kill"),
            {"max-interval": "1m 30s", "on-max-attempts": "kill"},
        ),
    ],
)
def test_restate_server_takes_the_retry_policy(
    helm: Helm, sets: tuple[str, ...], expected: dict[str, object]
) -> None:
    """The real restate-server, given the StatefulSet's environment, reports the retry policy
    of the values as its own (a misspelt variable would leave Restate's default in place)."""
    sts = named(helm.template(*sets), "StatefulSet", f"{FULLNAME}-restate")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    env = {k: e["value"] for k, e in env_of(container).items() if k.startswith("RESTATE_DEFAULT")}
    server = install_restate() / "restate-server"
    dumped = subprocess.run(
        [str(server), "--dump-config"], env={**env, "PATH": os.environ["PATH"]},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    policy = tomllib.loads(dumped.stdout)["default-retry-policy"]
    assert {k: policy[k] for k in expected} == expected, policy


def test_restate_services(default: list[Obj]) -> None:
    svc = named(default, "Service", f"{FULLNAME}-restate")
    assert svc["spec"]["type"] == "ClusterIP"
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [5122, 8080, 9070]
    headless = named(default, "Service", f"{FULLNAME}-restate-cluster")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True


def test_examples(default: list[Obj]) -> None:
    apps = {e.name: e.app for e in catalog.EXAMPLES}
    for example, app in apps.items():
        name = f"{FULLNAME}-{example}"
        workload = named(default, "RestateWorkload", name)
        assert workload["apiVersion"] == "examples.restate.dev/v1alpha1"
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", "examples_runtime", app]
        assert container["image"] == f"restate-examples-{example}:0.1.0"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        keys = env_of(container)["RESTATE_IDENTITY_KEYS"]["valueFrom"]["configMapKeyRef"]
        assert keys == {"name": f"{FULLNAME}-restate-identity-public", "key": "publicKey"}
        ingress_url = env_of(container)["RESTATE_INGRESS_URL"]["value"]
        assert ingress_url == f"http://{FULLNAME}-restate.{NAMESPACE}.svc.cluster.local:8080"
        # The stable Service (people, Prometheus) selects the pods of every version.
        stable = named(default, "Service", name)
        http2, metrics_port = stable["spec"]["ports"]
        assert http2 == {
            "name": "http2",
            "port": 9080,
            "targetPort": "http2",
            "appProtocol": "kubernetes.io/h2c",
        }
        assert stable["spec"]["selector"] == workload["spec"]["selector"]["matchLabels"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert stable["spec"]["selector"].items() <= labels.items()
        assert (metrics_port["name"], metrics_port["port"]) == ("metrics", 9090)
        assert env_of(container)["METRICS_PORT"]["value"] == "9090"
        assert {"name": "metrics", "containerPort": 9090} in container["ports"]
        spec = workload["spec"]
        assert (spec["port"], spec["replicas"], spec["useHttp11"]) == (9080, 1, False)
        assert (spec["deletionPolicy"], spec["drainDelaySeconds"]) == ("Drain", 300)
        annotations = spec["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == "9090"  # not the handler port


def test_long_release_names_keep_version_service_names_valid(helm: Helm) -> None:
    """Each version's Service is <workload>-<10 hex chars>: at most 63 characters."""
    objects = helm.template(extra=["--set", "fullnameOverride=" + "x" * 40])
    names = [w["metadata"]["name"] for w in of_kind(objects, "RestateWorkload")]
    assert len(set(names)) == 4 and all(len(n) <= 52 for n in names), names


def test_security_defaults(default: list[Obj]) -> None:
    for obj, spec in pod_specs(default):
        where = f"{obj['kind']} {obj['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            image: str = container["image"]
            assert not image.endswith(":latest") and ":" in image, where
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: no writable /tmp"


def test_private_key_only_in_restate(default: list[Obj]) -> None:
    secret = f"{FULLNAME}-restate-identity"
    holders = []
    for obj, spec in pod_specs(default):
        for volume in spec.get("volumes", []):
            if volume.get("secret", {}).get("secretName") == secret:
                holders.append(obj["metadata"]["name"])
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef", {})
                assert ref.get("name") != secret, f"{obj['metadata']['name']} reads the key"
    assert holders == [f"{FULLNAME}-restate"]


def test_keygen_hook(default: list[Obj]) -> None:
    job = named(default, "Job", f"{FULLNAME}-keygen")
    assert hook_of(job) == "pre-install,pre-upgrade"
    # A missing image fails the install after 2 minutes, not after helm's whole --timeout.
    assert job["spec"]["activeDeadlineSeconds"] <= 120 and job["spec"]["backoffLimit"] <= 1
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "restate-examples-operator:0.1.0"
    args = container["command"]
    assert args[:3] == ["python", "-m", "restate_operator.keygen"]
    assert args[args.index("--private-secret") + 1] == f"{FULLNAME}-restate-identity"
    assert args[args.index("--public-configmap") + 1] == f"{FULLNAME}-restate-identity-public"
    assert args[args.index("--namespace") + 1] == NAMESPACE
    role = named(default, "Role", f"{FULLNAME}-keygen")
    assert hook_of(role) == "pre-install,pre-upgrade"
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= {"get", "create", "patch"}, rule
        if set(rule["verbs"]) != {"create"}:
            assert rule["resourceNames"], f"{rule} is not limited to the key's objects"
    sa = named(default, "ServiceAccount", f"{FULLNAME}-keygen")
    job_weight = int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert int(sa["metadata"]["annotations"]["helm.sh/hook-weight"]) < job_weight
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_operator(default: list[Obj]) -> None:
    name = f"{FULLNAME}-operator"
    deploy = named(default, "Deployment", name)
    spec = deploy["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == name
    (container,) = spec["containers"]
    env = env_of(container)
    assert env["WATCH_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    admin = f"http://{FULLNAME}-restate.{NAMESPACE}.svc.cluster.local:9070"
    assert env["RESTATE_ADMIN_URL"]["value"] == admin
    assert env["CLUSTER_DOMAIN"]["value"] == "cluster.local"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    role = named(default, "Role", name)
    rules = yaml.safe_load((CHART / "files" / "operator-rules.yaml").read_text())
    assert role["rules"] == rules
    binding = named(default, "RoleBinding", name)
    assert binding["roleRef"]["name"] == name
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
    metrics = named(default, "Service", f"{name}-metrics")
    assert metrics["spec"]["ports"][0]["port"] == 9090


def test_network_policies(default: list[Obj]) -> None:
    def component(selector: Obj) -> str:
        labels: dict[str, str] = selector["podSelector"]["matchLabels"]
        return labels["app.kubernetes.io/component"]

    monitoring = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    examples = named(default, "NetworkPolicy", f"{FULLNAME}-examples")
    handlers, scrapes = examples["spec"]["ingress"]
    assert [component(p) for p in handlers["from"]] == ["restate-server"]
    assert handlers["ports"] == [{"protocol": "TCP", "port": 9080}]
    # Prometheus (default: the "monitoring" namespace) reaches the metrics port, not 9080.
    assert scrapes == {"from": [monitoring], "ports": [{"protocol": "TCP", "port": 9090}]}

    restate = named(default, "NetworkPolicy", f"{FULLNAME}-restate")
    by_port = {r["ports"][0]["port"]: r for r in restate["spec"]["ingress"]}
    assert "from" not in by_port[8080], "the ingress port is the public entry point"
    assert [component(p) for p in by_port[9070]["from"]] == ["operator"]
    node_peers = by_port[5122]["from"]
    assert {component(p) for p in node_peers if "podSelector" in p} == {
        "restate-server",
        "restate-provision",
    }
    assert monitoring in node_peers  # Restate's /metrics is on its node port
    egress_to = {
        component(p)
        for r in restate["spec"]["egress"]
        for p in r.get("to", [])
        if "podSelector" in p
    }
    assert egress_to == {"example-service", "restate-server"}
    assert set(restate["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    operator = named(default, "NetworkPolicy", f"{FULLNAME}-operator")
    assert operator["spec"]["ingress"] == [
        {"from": [monitoring], "ports": [{"protocol": "TCP", "port": 9090}]}
    ]


def test_metrics_closed_with_empty_metrics_from(helm: Helm) -> None:
    objects = helm.template(values={"networkPolicy": {"metricsFrom": []}})
    examples = named(objects, "NetworkPolicy", f"{FULLNAME}-examples")
    assert [r["ports"] for r in examples["spec"]["ingress"]] == [
        [{"protocol": "TCP", "port": 9080}]
    ]
    assert named(objects, "NetworkPolicy", f"{FULLNAME}-operator")["spec"]["ingress"] == []


def test_helm_test_pod(default: list[Obj]) -> None:
    (pod,) = of_kind(default, "Pod")
    assert hook_of(pod) == "test"
    # A passed test leaves no pod; a failed one stays for its logs (until the cleanup hook).
    policy = pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"].split(",")
    assert set(policy) == {"before-hook-creation", "hook-succeeded"}
    assert pod["metadata"]["name"] == f"{FULLNAME}-test-examples"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "restate-examples-subscriptions:0.1.0"
    script: str = container["command"][-1]
    compile(script, "helm-test", "exec")
    for path in (
        "/GreeterObject/",
        "/SubscriptionService/add",
        "/SubscriptionObject/",
        "/SignupWorkflow/",
    ):
        assert path in script


def test_crd_upgrade_hook(default: list[Obj], helm: Helm) -> None:
    """Before an upgrade's objects: the chart's CRDs server-side applied (Helm never upgrades
    crds/), by a Job whose identity may only get/patch those two CRDs."""
    name = f"{FULLNAME}-operator-crds"
    cluster_name = f"{name}-{NAMESPACE}"
    job = named(default, "Job", name)
    config = named(default, "ConfigMap", name)
    objects = [config, named(default, "ServiceAccount", name),
               named(default, "ClusterRole", cluster_name),
               named(default, "ClusterRoleBinding", cluster_name)]  # fmt: skip
    for obj in [*objects, job]:
        assert hook_of(obj) == "pre-upgrade", obj["metadata"]["name"]
    weights = [int(o["metadata"]["annotations"]["helm.sh/hook-weight"]) for o in objects]
    assert max(weights) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    (rule,) = named(default, "ClusterRole", cluster_name)["rules"]
    assert rule == {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "resourceNames": ["restateregistrations.examples.restate.dev",
                          "restateworkloads.examples.restate.dev"],
        "verbs": ["get", "patch"],
    }  # fmt: skip
    # The ConfigMap carries the chart's crds/ files byte for byte.
    for crd in ("restateregistrations.yaml", "restateworkloads.yaml"):
        assert config["data"][crd] == (CHART / "crds" / crd).read_text().rstrip("\n")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:4] == ["python", "-m", "restate_operator.crds", "/crds"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    off = helm.template("operator.upgradeCrds=false")
    assert not [o for o in off if o["metadata"]["name"] == name]


def test_cleanup_hook(default: list[Obj]) -> None:
    """Before uninstall deletes the operator: the registrations go (their finalizer runs)."""
    name = f"{FULLNAME}-operator-cleanup"
    job = named(default, "Job", name)
    assert hook_of(job) == "pre-delete"
    objects = [named(default, kind, name) for kind in ("ServiceAccount", "Role", "RoleBinding")]
    for obj in [*objects, job]:
        annotations = obj["metadata"]["annotations"]
        assert hook_of(obj) == "pre-delete"
        policy = set(annotations["helm.sh/hook-delete-policy"].split(","))
        assert policy == {"before-hook-creation", "hook-succeeded"}
    weights = [int(o["metadata"]["annotations"]["helm.sh/hook-weight"]) for o in objects]
    assert max(weights) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    spec = job["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == name
    (container,) = spec["containers"]
    assert container["image"] == "restate-examples-operator:0.1.0"
    args = container["command"]
    assert args[:3] == ["python", "-m", "restate_operator.cleanup"]
    assert args[args.index("--namespace") + 1] == NAMESPACE
    assert args[args.index("--delete-pod") + 1] == f"{FULLNAME}-test-examples"
    timeout = int(args[args.index("--timeout-seconds") + 1])
    assert int(args[args.index("--drain-seconds") + 1]) < timeout < 300  # helm's --timeout
    assert timeout < job["spec"]["activeDeadlineSeconds"]
    # The selector picks exactly this release's workloads.
    selector = dict(kv.split("=") for kv in args[args.index("--selector") + 1].split(","))
    workloads = of_kind(default, "RestateWorkload")
    assert len(workloads) == 4
    for workload in workloads:
        assert selector.items() <= workload["metadata"]["labels"].items()
    # Least privilege: the two kinds (no get/create/update), and the test pod by name only.
    role = named(default, "Role", name)
    assert role["rules"] == [
        {
            "apiGroups": ["examples.restate.dev"],
            "resources": ["restateworkloads", "restateregistrations"],
            "verbs": ["list", "delete", "patch"],
        },
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "resourceNames": [f"{FULLNAME}-test-examples"],
            "verbs": ["delete"],
        },
    ]


# ------------------------------------------------------------------------- switches


def provision_jobs(objects: list[Obj]) -> list[Obj]:
    return [
        j
        for j in of_kind(objects, "Job")
        if j["metadata"]["labels"]["app.kubernetes.io/component"] == "restate-provision"
    ]


def test_replicated_mode(helm: Helm) -> None:
    objects = helm.template("restate.replicated.enabled=true")
    sts = named(objects, "StatefulSet", f"{FULLNAME}-restate")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    env = env_of(sts["spec"]["template"]["spec"]["containers"][0])
    assert env["RESTATE_AUTO_PROVISION"]["value"] == "false"
    addresses = json.loads(env["RESTATE_METADATA_CLIENT__ADDRESSES"]["value"])
    headless = f"{FULLNAME}-restate-cluster"
    assert addresses == [f"http://{FULLNAME}-restate-{i}.{headless}:5122" for i in range(3)]
    (job,) = provision_jobs(objects)
    # Not a post-install hook: `helm install --wait` waits for the nodes, which become ready
    # only once provisioned; a release object runs at once, with the StatefulSet.
    assert hook_of(job) is None
    assert job["metadata"]["name"].startswith(f"{FULLNAME}-restate-provision-")
    assert len(job["metadata"]["name"]) <= 63
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "restatectl provision --replication 2 --yes" in container["args"][0]
    assert env_of(container)["RESTATECTL_ADDRESS"]["value"] == (
        f"http://{FULLNAME}-restate-0.{headless}:5122"
    )
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == (
        "restate-provision"
    )
    # The pod template of a Job is immutable: a new Restate image is a new Job (name), so
    # that `helm upgrade` replaces it instead of failing; the same values keep the same Job.
    again = provision_jobs(helm.template("restate.replicated.enabled=true"))
    assert [j["metadata"]["name"] for j in again] == [job["metadata"]["name"]]
    upgraded = provision_jobs(
        helm.template("restate.replicated.enabled=true", "restate.image.tag=1.7.13")
    )
    assert upgraded[0]["metadata"]["name"] != job["metadata"]["name"]


def test_long_release_names_keep_the_provision_job_name_valid(helm: Helm) -> None:
    objects = helm.template("restate.replicated.enabled=true", "fullnameOverride=" + "x" * 40)
    (job,) = provision_jobs(objects)
    assert len(job["metadata"]["name"]) <= 63


def test_keep_restate_volume_on_uninstall(helm: Helm) -> None:
    objects = helm.template("restate.persistence.keepOnUninstall=true")
    sts = named(objects, "StatefulSet", f"{FULLNAME}-restate")
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


def test_cluster_domain_reaches_the_operator_and_services(helm: Helm) -> None:
    objects = helm.template("clusterDomain=corp.example")
    operator = named(objects, "Deployment", f"{FULLNAME}-operator")
    env = env_of(operator["spec"]["template"]["spec"]["containers"][0])
    assert env["CLUSTER_DOMAIN"]["value"] == "corp.example"  # the endpoints it registers
    assert env["RESTATE_ADMIN_URL"]["value"].endswith(".svc.corp.example:9070")
    service = named(objects, "RestateWorkload", f"{FULLNAME}-user-object")
    ingress = env_of(service["spec"]["template"]["spec"]["containers"][0])["RESTATE_INGRESS_URL"]
    assert ingress["value"].endswith(".svc.corp.example:8080")


def test_replication_larger_than_cluster_is_rejected(helm: Helm) -> None:
    error = helm.template_error(
        "restate.replicated.enabled=true", "restate.replicated.replication=4"
    )
    assert "restate.replicated.replication (4) cannot exceed restate.replicated.replicas (3)" in (
        error
    )


def test_ingress_exposes_only_the_ingress_port(helm: Helm) -> None:
    objects = helm.template("restate.ingress.enabled=true", "restate.ingress.className=nginx")
    (ingress,) = of_kind(objects, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    backends = [
        p["backend"]["service"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]
    ]
    assert backends == [{"name": f"{FULLNAME}-restate", "port": {"name": "ingress"}}]


def test_hpa_and_pdb(helm: Helm) -> None:
    objects = helm.template(
        "examples.defaults.autoscaling.enabled=true",
        "examples.defaults.podDisruptionBudget.enabled=true",
        "examples.userObject.autoscaling.maxReplicas=7",
    )
    hpas = {h["metadata"]["name"]: h for h in of_kind(objects, "HorizontalPodAutoscaler")}
    assert set(hpas) == {f"{FULLNAME}-{e}" for e in EXAMPLES}
    assert hpas[f"{FULLNAME}-user-object"]["spec"]["maxReplicas"] == 7
    assert hpas[f"{FULLNAME}-subscriptions"]["spec"]["maxReplicas"] == 4
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "examples.restate.dev/v1alpha1",
            "kind": "RestateWorkload",
            "name": name,
        }  # its scale subresource: the current version's replicas
        assert "replicas" not in named(objects, "RestateWorkload", name)["spec"]
    pdbs = of_kind(objects, "PodDisruptionBudget")
    assert len(pdbs) == 4 and all(p["spec"]["minAvailable"] == 1 for p in pdbs)


def test_network_policy_off(helm: Helm) -> None:
    assert not of_kind(helm.template("networkPolicy.enabled=false"), "NetworkPolicy")


def test_identity_given_in_values(helm: Helm) -> None:
    objects = helm.template(
        values={"identity": {"privateKeyPem": RFC8032_PEM, "publicKey": RFC8032_PUBLIC}}
    )
    assert not [j for j in of_kind(objects, "Job") if "keygen" in j["metadata"]["name"]]
    secret = named(objects, "Secret", f"{FULLNAME}-restate-identity-values")
    assert hook_of(secret) is None
    configmap = named(objects, "ConfigMap", f"{FULLNAME}-restate-identity-public-values")
    assert configmap["data"] == {"publicKey": RFC8032_PUBLIC}
    sts = named(objects, "StatefulSet", f"{FULLNAME}-restate")
    volume = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "identity")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]


def test_identity_existing_secret(helm: Helm) -> None:
    objects = helm.template(
        "identity.existingSecret=my-key",
        "identity.existingSecretKey=key.pem",
        f"identity.publicKey={RFC8032_PUBLIC}",
    )
    assert not of_kind(objects, "Secret")
    sts = named(objects, "StatefulSet", f"{FULLNAME}-restate")
    volume = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "identity")
    assert volume["secret"]["secretName"] == "my-key"
    assert volume["secret"]["items"] == [{"key": "key.pem", "path": "private.pem"}]


def test_identity_disabled(helm: Helm) -> None:
    objects = helm.template("identity.enabled=false")
    for _, spec in pod_specs(objects):
        for container in spec["containers"]:
            env = env_of(container)
            assert "RESTATE_IDENTITY_KEYS" not in env
            assert "RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE" not in env


def test_service_monitors_only_with_their_api(helm: Helm) -> None:
    objects = helm.template(extra=["--api-versions", "monitoring.coreos.com/v1"])
    monitors = {m["metadata"]["name"]: m for m in of_kind(objects, "ServiceMonitor")}
    ports = {name: m["spec"]["endpoints"][0]["port"] for name, m in monitors.items()}
    assert ports == {
        f"{FULLNAME}-restate-server": "node",
        f"{FULLNAME}-example-service": "metrics",
        f"{FULLNAME}-operator": "metrics",
    }
    # The examples' stable Services, not the Service of each version (each pod once).
    examples = monitors[f"{FULLNAME}-example-service"]["spec"]["selector"]
    assert examples["matchExpressions"] == [
        {"key": "examples.restate.dev/version", "operator": "DoesNotExist"}
    ]


def test_images_from_skaffold_style_values(helm: Helm) -> None:
    objects = helm.template(
        "examples.userObject.image.repository=registry.local/uo",
        "examples.userObject.image.tag=abc123",
        "operator.image.digest=sha256:" + "a" * 64,
    )
    uo = named(objects, "RestateWorkload", f"{FULLNAME}-user-object")
    assert uo["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/uo:abc123"
    op = named(objects, "Deployment", f"{FULLNAME}-operator")
    image = op["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "restate-examples-operator:0.1.0@sha256:" + "a" * 64


def test_notes(helm: Helm) -> None:
    proc = helm.run("install", "demo", str(CHART), "--namespace", NAMESPACE, "--dry-run=client")
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert f"port-forward svc/{FULLNAME}-restate 8080:8080 9070:9070" in notes
    assert "curl localhost:8080/GreeterObject/mary/greet" in notes
    assert "helm test -n examples demo" in notes
    # Restate's ingress refuses a content-type without a body (400).
    (run,) = [line for line in notes.splitlines() if "/MyService/run" in line]
    assert "-X POST" in run and "content-type" not in run.split("#")[0] and " -d" not in run
    assert "make images" in notes and "image.repository" in notes
    assert "Restate's volume included" in notes
    assert "get restateworkloads -w" in notes
    assert f"logs -l examples.restate.dev/workload={FULLNAME}-signup-workflow" in notes
    assert f"port-forward svc/{FULLNAME}-signup-workflow 9080:9080" in notes


# ------------------------------------------------------------------------- rejected values


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (["examples.defaults.registration.deletionPolicy=Sometimes"], "deletionPolicy"),
        (["examples.defaults.registration.drainDelaySeconds=-1"], "drainDelaySeconds"),
        (["examples.userObject.failureMode=explode"], "failureMode"),
        (["examples.subscriptions.failureProbabilities.create_recurring_payment=2"], "maximum"),
        (["identity.publicKey=not-a-key"], "publicKey"),
        (["restate.replicated.replicas=2"], "replicas"),
        (["restate.image.digest=latest"], "digest"),
        (["operator.replicas=2"], "replicas"),
        (["examples.defaults.logLevel=LOUD"], "logLevel"),
        (["restate.ingress.hosts[0].paths[0].pathType=Anything"], "pathType"),
        (["nosuchkey=1"], "nosuchkey"),
        (["examples.userObject.replica=2"], "replica"),
        (["examples.signupWorkflow.publicUrl=ftp://x"], "publicUrl"),
        (["identity.existingSecret=Not_A_Name"], "existingSecret"),
        (["clusterDomain=http://x"], "clusterDomain"),
        (["networkPolicy.metricsFrom[0].namespace=monitoring"], "metricsFrom"),
        (["restate.retryPolicy.maxInterval=5 seconds"], "maxInterval"),
        (["restate.retryPolicy.onMaxAttempts=retry"], "onMaxAttempts"),
    ],
)
def test_schema_rejects(helm: Helm, sets: list[str], expected: str) -> None:
    error = helm.template_error(*sets)
    assert "values don't meet the specifications of the schema" in error, error
    assert expected in error, error


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"identity": {"privateKeyPem": RFC8032_PEM}},
            "identity.privateKeyPem is set but identity.publicKey is empty",
        ),
        (
            {"identity": {"existingSecret": "my-key"}},
            "identity.existingSecret is set but identity.publicKey is empty",
        ),
        (
            {"identity": {"publicKey": RFC8032_PUBLIC}},
            "identity.publicKey is set without identity.privateKeyPem or identity.existingSecret",
        ),
    ],
)
def test_chart_rejects_inconsistent_identity(
    helm: Helm, values: dict[str, object], expected: str
) -> None:
    assert expected in helm.template_error(values=values)
