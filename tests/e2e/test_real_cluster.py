"""End to end on a real cluster: the chart installed as the README says, on real pods.

The cluster comes from ``plugins.real_cluster.real_cluster``: any cluster given by
RESTATE_EXAMPLES_KUBECONFIG, else kind where Docker and kind exist, else the local real node
(kubelet + containerd on this machine). The same tests run on all three.

Through ``kubectl port-forward`` to Restate's ingress every request of the README is sent and
its answer checked; the workflow's secret comes from the pod's log and the awakeable id from
``GET /awakeables``, as a user gets them. Pods are deleted mid-invocation; an unsigned request
from another pod is refused; ``helm upgrade``, ``helm test`` and ``helm uninstall`` run with
the operator alive; the replicated Restate mode is installed and loses a pod.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e.pods import awakeable_for

from plugins.real_cluster import RealCluster
from testkit.processes import eventually

# Generous: on a cold machine the first test also waits for the images to be built.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

NAMESPACE = "restate-examples"
RELEASE = "restate-examples"
FULLNAME = RELEASE  # the chart's fullname when the release is named after it
EXAMPLES = ("subscriptions", "building-blocks", "user-object", "signup-workflow")
# Short settings so the building blocks' sleep and delayed message finish within a test.
FAST_BUILDING_BLOCKS = [
    "--set",
    "examples.buildingBlocks.cancelDelaySeconds=5",
    "--set",
    "examples.buildingBlocks.sleepSeconds=1",
]
# Each of the subscriptions' pretend external calls takes this long before its effect, so a
# test can kill the container while a step runs.
STUB_LATENCY = 3
SLOW_SUBSCRIPTIONS = [
    "--set",
    "examples.subscriptions.extraEnv[0].name=STUB_LATENCY_SECONDS",
    "--set-string",
    f"examples.subscriptions.extraEnv[0].value={STUB_LATENCY}",
]


def _json(cluster: RealCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json"))


def _ready_registrations(cluster: RealCluster, namespace: str) -> list[dict[str, Any]]:
    """The examples' RestateWorkloads that are Ready with the version their spec describes
    registered (no rollout pending)."""
    items: list[dict[str, Any]] = _json(cluster, "-n", namespace, "get", "restateworkloads")[
        "items"
    ]
    return [
        item
        for item in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in item.get("status", {}).get("conditions", [])
        )
        and item["status"].get("currentVersion") == item["status"].get("desiredVersion")
    ]


def _wait_registrations(cluster: RealCluster, namespace: str, timeout: float = 300) -> float:
    """Waits until the four workloads are Ready and current; returns how long it took."""
    t0 = time.monotonic()
    eventually(
        lambda: len(_ready_registrations(cluster, namespace)) == 4,
        timeout,
        "four RestateWorkloads Ready",
        interval=1,
    )
    return time.monotonic() - t0


def _logs(cluster: RealCluster, namespace: str, example: str) -> str:
    """The logs of every pod of the example (all its versions), as NOTES.txt shows."""
    selector = f"examples.restate.dev/workload={FULLNAME}-{example}"
    return cluster.kubectl("-n", namespace, "logs", "-l", selector, "--tail=-1")


def _install(cluster: RealCluster, namespace: str, *extra: str) -> float:
    """`helm install` as the README shows it (plus ``extra``); returns its duration."""
    t0 = time.monotonic()
    cluster.helm(
        "install",
        RELEASE,
        "deploy/helm/restate-examples",
        "--namespace",
        namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        "10m",
        *cluster.cluster_values,
        *FAST_BUILDING_BLOCKS,
        *extra,
    )
    return time.monotonic() - t0


def _uninstall(cluster: RealCluster, namespace: str) -> None:
    cluster.helm("uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "5m")


@pytest.fixture(scope="module")
def release(real_cluster: RealCluster) -> Iterator[str]:
    installed = _install(real_cluster, NAMESPACE, *SLOW_SUBSCRIPTIONS)
    ready = _wait_registrations(real_cluster, NAMESPACE)
    print(f"\nhelm install --wait: {installed:.1f} s; then four registrations Ready: {ready:.1f} s")
    try:
        yield NAMESPACE
    finally:
        # test_uninstall_leaves_nothing uninstalls it when it runs; a failed uninstall fails.
        if RELEASE in real_cluster.helm("list", "--namespace", NAMESPACE, "--short").split():
            _uninstall(real_cluster, NAMESPACE)


@pytest.fixture
def ingress(real_cluster: RealCluster, release: str) -> Iterator[httpx.Client]:
    with (
        real_cluster.port_forward(release, f"svc/{FULLNAME}-restate", 8080) as url,
        httpx.Client(base_url=url, timeout=120) as client,
    ):
        yield client


# ----------------------------------------------------------------------------- install


def test_install_runs_hooks_probes_and_registrations(
    real_cluster: RealCluster, release: str
) -> None:
    # The pre-install hook Job made the identity key pair (as a pod) before anything else.
    secret = _json(real_cluster, "-n", release, "get", "secret", f"{FULLNAME}-restate-identity")
    assert "private.pem" in secret["data"]
    public = _json(
        real_cluster, "-n", release, "get", "configmap", f"{FULLNAME}-restate-identity-public"
    )
    assert public["data"]

    # Every pod Ready, checked by real probes (readiness; the operator: liveness).
    pods = _json(real_cluster, "-n", release, "get", "pods")["items"]
    running = [p for p in pods if p["status"]["phase"] == "Running"]
    assert len(running) == 6, [p["metadata"]["name"] for p in pods]  # 4 examples, operator, Restate
    for pod in running:
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True", pod["metadata"]["name"]
        probes = [
            c.get("readinessProbe") or c.get("livenessProbe") for c in pod["spec"]["containers"]
        ]
        assert all(probes), pod["metadata"]["name"]

    # The four workloads point Restate at the DNS name of their version's own Service
    # (<workload>-<hash>), registered by the operator from its image as its own ServiceAccount.
    registrations = _ready_registrations(real_cluster, release)
    endpoints = sorted(r["status"]["endpoint"] for r in registrations)
    assert len(endpoints) == 4
    for example, endpoint in zip(sorted(EXAMPLES), endpoints, strict=True):
        assert re.match(
            rf"^http://{FULLNAME}-{example}-[0-9a-f]{{10}}\.{release}\.svc\.cluster\.local:9080$",
            endpoint,
        ), endpoint
    operator = next(p for p in running if "operator" in p["metadata"]["name"])
    assert operator["spec"]["serviceAccountName"] == f"{FULLNAME}-operator"
    assert "restate-examples-operator" in operator["spec"]["containers"][0]["image"]
    events = real_cluster.kubectl(
        "-n", release, "get", "events", "--field-selector", "reason=Registered", "-o", "name"
    )
    assert events.strip(), "no Registered event from the operator"


# ----------------------------------------------------------------------------- the README


def test_greeter_object(ingress: httpx.Client) -> None:
    mary, barack = f"mary-{uuid.uuid4().hex[:6]}", f"barack-{uuid.uuid4().hex[:6]}"
    assert ingress.post(f"/GreeterObject/{mary}/greet", json="Hi").json() == (
        f"Hi {mary} for the 1-th time."
    )
    assert ingress.post(f"/GreeterObject/{barack}/greet", json="Hello").json() == (
        f"Hello {barack} for the 1-th time."
    )
    assert ingress.post(f"/GreeterObject/{mary}/ungreet").json() == (
        f"Dear {mary}, taking one greeting back: 0."
    )


def _subscription_effects(
    log: str, user: str, expected: int
) -> tuple[Counter[str], Counter[str]] | None:
    """The user's effects, from the "stub executed" records (the pretend external systems):
    (subscriptions made by name, the recurring payments they use by how often each was made),
    once all ``expected`` subscriptions are in the log."""
    records = _records(log, "stub executed")
    mine = [r for r in records if r["step"] == "create_subscription" and r["stub_args"][0] == user]
    if len(mine) < expected:
        return None
    payments = Counter(r["result"] for r in records if r["step"] == "create_recurring_payment")
    made = Counter(r["stub_args"][1] for r in mine)
    return made, Counter({ref: payments[ref] for ref in {r["stub_args"][2] for r in mine}})


SUBSCRIPTIONS = ["Netflix", "Disney+", "HBO Max"]


def _add_subscriptions(ingress: httpx.Client, user: str, *, send: bool = False) -> httpx.Response:
    body = {"userId": user, "creditCard": "1234-5678-9012-3456", "subscriptions": SUBSCRIPTIONS}
    return ingress.post("/SubscriptionService/add" + ("/send" if send else ""), json=body)


def test_subscriptions(real_cluster: RealCluster, release: str, ingress: httpx.Client) -> None:
    user = f"Sam Beckett {uuid.uuid4().hex[:6]}"
    answer = _add_subscriptions(ingress, user)
    assert answer.status_code == 200, answer.text
    assert answer.text in ("", "null")
    # One recurring payment and one subscription per name, each exactly once, although the
    # stubs fail (50%, 30%) and Restate retried them.
    made, charged = eventually(
        lambda: _subscription_effects(
            _logs(real_cluster, release, "subscriptions"), user, len(SUBSCRIPTIONS)
        ),
        60,
        "the three subscriptions in the subscriptions log",
    )
    assert made == Counter(SUBSCRIPTIONS), made
    assert len(charged) == 1 and sum(charged.values()) == 1, charged  # one payment, once


def test_signup_workflow(real_cluster: RealCluster, release: str, ingress: httpx.Client) -> None:
    user = f"userid-{uuid.uuid4().hex[:6]}"
    sent = ingress.post(
        f"/SignupWorkflow/{user}/run/send", json={"name": "Bob", "email": "bob@builder.com"}
    )
    assert sent.status_code in (200, 202), sent.text
    pattern = re.compile(rf"/verify/{user}\?secret=([0-9a-zA-Z-]+)")
    secret = eventually(
        lambda: (
            m.group(1)
            if (m := pattern.search(_logs(real_cluster, release, "signup-workflow")))
            else None
        ),
        60,
        "the verification email in the signup-workflow log",
    )
    assert ingress.post(f"/SignupWorkflow/{user}/click", json=secret).status_code == 200
    assert ingress.get(f"/restate/workflow/SignupWorkflow/{user}/attach").json() is True


def test_building_blocks(real_cluster: RealCluster, release: str, ingress: httpx.Client) -> None:
    key = f"e2e-{uuid.uuid4().hex[:8]}"
    sent = ingress.post("/MyService/run/send", headers={"idempotency-key": key})
    assert sent.status_code in (200, 202), sent.text
    invocation_id: str = sent.json()["invocationId"]
    awakeable = awakeable_for(real_cluster, release, FULLNAME, invocation_id)
    resolved = ingress.post(f"/restate/awakeables/{awakeable}/resolve", json="hello")
    assert resolved.status_code in (200, 202), resolved.text
    result = ingress.get(f"/restate/invocation/{invocation_id}/attach", timeout=120).json()
    assert result == {"rpcResult": "SUCCESS", "greeting": "hello", "charged": True}


# ----------------------------------------------------------------------------- failures


def _records(log: str, message: str) -> list[dict[str, Any]]:
    """The JSON log records with this message (lines of other formats skipped)."""
    records = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("message") == message:
                records.append(record)
    return records


def _stub_steps(log: str, invocation_id: str) -> Counter[str]:
    """How often each stub step ran for one invocation, from the JSON log lines."""
    return Counter(
        r["step"] for r in _records(log, "stub executed") if r.get("invocation_id") == invocation_id
    )


def test_service_pod_deleted_mid_invocation(
    real_cluster: RealCluster, release: str, ingress: httpx.Client
) -> None:
    """MyService/run suspends on its awakeable; its pod is deleted; Restate resumes the
    invocation on the replacement pod, and no step runs twice across the two pods."""
    sent = ingress.post("/MyService/run/send", headers={"idempotency-key": uuid.uuid4().hex})
    invocation_id: str = sent.json()["invocationId"]
    awakeable = awakeable_for(real_cluster, release, FULLNAME, invocation_id)
    before = _stub_steps(_logs(real_cluster, release, "building-blocks"), invocation_id)
    assert before, "no step ran before the awakeable"
    selector = (
        "app.kubernetes.io/name=restate-examples,examples.restate.dev/example=building-blocks"
    )
    old = real_cluster.kubectl("-n", release, "get", "pods", "-l", selector, "-o", "name").split()
    real_cluster.kubectl("-n", release, "delete", *old, "--wait=true")
    eventually(
        lambda: _pods_ready(real_cluster, release, selector, 1), 180, "the replacement pod Ready"
    )
    resolved = ingress.post(f"/restate/awakeables/{awakeable}/resolve", json="hello")
    assert resolved.status_code in (200, 202), resolved.text
    result = ingress.get(f"/restate/invocation/{invocation_id}/attach", timeout=180).json()
    assert result["greeting"] == "hello" and result["charged"] is True
    after = _stub_steps(_logs(real_cluster, release, "building-blocks"), invocation_id)
    both = before + after
    assert after and all(n == 1 for n in both.values()), (before, after)


def test_service_container_sigkilled_while_a_step_runs(
    real_cluster: RealCluster, release: str, ingress: httpx.Client
) -> None:
    """SubscriptionService/add is running its steps (each stub takes STUB_LATENCY seconds);
    right after its payment was made, while the first subscription's call is under way, the
    service's container is SIGKILLed from the node's runtime (no graceful stop). The kubelet
    restarts it; Restate retries the invocation on it, replaying the journal: it completes,
    and every step's effect happened exactly once across the two containers."""
    selector = "examples.restate.dev/example=subscriptions"
    (pod,) = real_cluster.kubectl(
        "-n", release, "get", "pods", "-l", selector, "-o", "jsonpath={.items[*].metadata.name}"
    ).split()  # fmt: skip

    def restarts() -> int:
        status = _json(real_cluster, "-n", release, "get", "pod", pod)["status"]
        return int(status["containerStatuses"][0]["restartCount"])

    before = restarts()
    user = f"Killed Beckett {uuid.uuid4().hex[:6]}"
    sent = _add_subscriptions(ingress, user, send=True)
    assert sent.status_code in (200, 202), sent.text
    invocation_id: str = sent.json()["invocationId"]

    def paid() -> bool:
        log = real_cluster.kubectl("-n", release, "logs", pod, "--tail=-1")
        return "create_recurring_payment" in _stub_steps(log, invocation_id)

    eventually(paid, 120, "the payment step done, in the pod's log", interval=0.2)
    real_cluster.kill_container(release, pod)
    eventually(lambda: restarts() == before + 1, 120, "the container restarted")
    eventually(lambda: _pods_ready(real_cluster, release, selector, 1), 120, "the pod Ready")
    done = ingress.get(f"/restate/invocation/{invocation_id}/attach", timeout=180)
    assert done.status_code == 200, done.text

    killed = real_cluster.kubectl("-n", release, "logs", pod, "--previous", "--tail=-1")

    def restarted_log() -> str | None:
        log = real_cluster.kubectl("-n", release, "logs", pod, "--tail=-1")
        return log if _stub_steps(log, invocation_id).total() >= len(SUBSCRIPTIONS) else None

    restarted = eventually(restarted_log, 60, "the subscriptions in the new container's log")
    # The killed container made the payment and no subscription (it died inside the first
    # one's call); the new one made the subscriptions and not the payment again (replayed).
    assert _stub_steps(killed, invocation_id) == Counter(["create_recurring_payment"])
    assert _stub_steps(restarted, invocation_id) == Counter(
        {"create_subscription": len(SUBSCRIPTIONS)}
    )
    effects = _subscription_effects(killed + restarted, user, len(SUBSCRIPTIONS))
    assert effects is not None
    made, charged = effects
    assert made == Counter(SUBSCRIPTIONS), made
    assert sum(charged.values()) == 1, charged


def _pods_ready(cluster: RealCluster, namespace: str, selector: str, count: int) -> bool:
    pods = _json(cluster, "-n", namespace, "get", "pods", "-l", selector)["items"]
    ready = [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions") or []
        )
    ]
    return len(ready) == count == len(pods)


def _greeting_survives(cluster: RealCluster, namespace: str, pod: str, *, wait: bool) -> None:
    """A greeting, the Restate pod ``pod`` deleted, the same greeting again: the count goes on
    from the stored state. With ``wait`` the StatefulSet's rollout is awaited before asking
    again (a single node: nothing answers meanwhile), else the other nodes answer."""
    key = f"durable-{uuid.uuid4().hex[:6]}"
    with (
        cluster.port_forward(namespace, f"svc/{FULLNAME}-restate", 8080) as url,
        httpx.Client(base_url=url, timeout=60) as ingress,
    ):
        answer = ingress.post(f"/GreeterObject/{key}/greet", json="Hi")
        assert answer.json() == f"Hi {key} for the 1-th time."
    cluster.kubectl("-n", namespace, "delete", "pod", pod, "--wait=true")
    rollout = ["-n", namespace, "rollout", "status", f"statefulset/{FULLNAME}-restate",
               "--timeout=300s"]  # fmt: skip
    if wait:
        cluster.kubectl(*rollout)
    with (
        cluster.port_forward(namespace, f"svc/{FULLNAME}-restate", 8080) as url,
        httpx.Client(base_url=url, timeout=60) as ingress,
    ):
        answer = eventually(
            lambda: ingress.post(f"/GreeterObject/{key}/greet", json="Hi"),
            120,
            f"Restate answering again after {pod} was deleted",
            interval=1,
        )
        assert answer.json() == f"Hi {key} for the 2-th time."  # the state survived
    if not wait:
        cluster.kubectl(*rollout)


def test_restate_pod_deleted_keeps_state(real_cluster: RealCluster, release: str) -> None:
    _greeting_survives(real_cluster, release, f"{FULLNAME}-restate-0", wait=True)
    # The operator judges the versions from the restarted Restate again: all four Ready.
    _wait_registrations(real_cluster, release, timeout=120)


def _jwt(private_pem: bytes, audience: str) -> str:
    """A request identity token as restate-server makes one (scheme v1: an EdDSA JWT whose
    audience is the path the service sees, valid a minute either side of now)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"typ": "JWT", "alg": "EdDSA"}).encode())
    claims = b64(
        json.dumps({"aud": audience, "iat": now, "nbf": now - 60, "exp": now + 60}).encode()
    )
    key = load_pem_private_key(private_pem, password=None)
    assert isinstance(key, Ed25519PrivateKey), type(key)
    signature = key.sign(f"{header}.{claims}".encode())
    return f"{header}.{claims}.{b64(signature)}"


def test_requests_not_signed_by_restate_are_refused(
    real_cluster: RealCluster, release: str
) -> None:
    """A pod that is not Restate calls a service through its Service DNS name: unsigned, or
    signed with another key, it gets 401. The same request signed with Restate's own key (from
    the release's Secret) gets past the check, so the 401s are the signature's doing. The pod
    wears Restate's labels, so that the NetworkPolicies (which select by label) let it through
    where they are enforced: the signature is the second lock, and it holds."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    images = _json(real_cluster, "-n", release, "get", "rwl", f"{FULLNAME}-user-object")
    image = images["spec"]["template"]["spec"]["containers"][0]["image"]
    path = "/invoke/GreeterObject/greet"
    url = f"http://{FULLNAME}-user-object.{release}.svc.cluster.local:9080{path}"
    secret = _json(real_cluster, "-n", release, "get", "secret", f"{FULLNAME}-restate-identity")
    restate_key = base64.b64decode(secret["data"]["private.pem"])
    other_key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    signed = {"x-restate-signature-scheme": "v1"}
    attempts = {
        "unsigned": {},
        "another-key": {**signed, "x-restate-jwt-v1": _jwt(other_key, path)},
        "restate-key": {**signed, "x-restate-jwt-v1": _jwt(restate_key, path)},
    }
    # A new pod's address reaches the policy engine's rules a moment after the pod starts
    # (kube-router syncs on pod events): until then the connection is refused, so it retries.
    script = (
        "import time, urllib.request, urllib.error\n"
        f"for label, headers in {attempts!r}.items():\n"
        f"    req = urllib.request.Request({url!r}, data=b'\"Hi\"', method='POST',\n"
        "        headers={'content-type': 'application/json', **headers})\n"
        "    for attempt in range(60):\n"
        "        try:\n"
        "            print(label, urllib.request.urlopen(req, timeout=10).status); break\n"
        "        except urllib.error.HTTPError as e:\n"
        "            print(label, e.code); break\n"
        "        except OSError as e:\n"
        "            print('not connected yet:', e); time.sleep(1)\n"
    )
    name = f"intruder-{uuid.uuid4().hex[:6]}"
    restate_labels = {
        "app.kubernetes.io/name": "restate-examples",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "restate-server",
    }
    overrides = {
        "metadata": {"labels": restate_labels},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": name,
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", script],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    out = real_cluster.kubectl(
        "-n",
        release,
        "run",
        name,
        "--rm",
        "-i",
        "--restart=Never",
        f"--image={image}",
        f"--overrides={json.dumps(overrides)}",
        "--pod-running-timeout=2m",
        timeout=180,
    )
    status = dict(line.split() for line in out.splitlines() if line.split()[0] in attempts)
    assert status["unsigned"] == "401", out
    assert status["another-key"] == "401", out
    assert status["restate-key"] != "401", out  # past the check (not a Restate request: 4xx)


# ----------------------------------------------------------------------------- lifecycle


def test_helm_upgrade_then_helm_test(real_cluster: RealCluster, release: str) -> None:
    real_cluster.helm(
        "upgrade",
        RELEASE,
        "deploy/helm/restate-examples",
        "--namespace",
        release,
        "--reuse-values",
        "--set",
        "examples.defaults.logLevel=DEBUG",
        "--wait",
        "--timeout",
        "10m",
    )
    deploy = _json(real_cluster, "-n", release, "get", "rwl", f"{FULLNAME}-user-object")
    env = {
        e["name"]: e.get("value")
        for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["LOG_LEVEL"] == "DEBUG"
    _wait_registrations(real_cluster, release)
    out = real_cluster.helm("test", RELEASE, "--namespace", release, "--logs", "--timeout", "10m")
    assert "Succeeded" in out, out
    assert "all four examples answered" in out, out


def _namespaced_kinds(cluster: RealCluster) -> str:
    """Every namespaced kind the API server lists (CRDs' included), for one ``kubectl get``."""
    names = cluster.kubectl("api-resources", "--verbs=list", "--namespaced=true", "-o", "name")
    return ",".join(n for n in names.split() if n not in ("events", "events.events.k8s.io"))


def test_uninstall_leaves_nothing(real_cluster: RealCluster, release: str) -> None:
    """`helm uninstall` with the operator alive: the registrations leave Restate first (its
    admin API, watched throughout, lists none just before Restate goes), and then nothing of
    the release stays in its namespace, of any kind: pods, hook Jobs, ServiceAccounts, Roles,
    RoleBindings, Secrets, ConfigMaps, PVCs and their volumes."""
    kept = {  # the identity key pair is kept across reinstalls on purpose (README: to rotate)
        "secret/restate-examples-restate-identity",
        "configmap/restate-examples-restate-identity-public",
        # what every namespace has
        "serviceaccount/default",
        "configmap/kube-root-ca.crt",
    }
    claims = {
        pvc["metadata"]["name"] for pvc in _json(real_cluster, "-n", release, "get", "pvc")["items"]
    }
    assert claims, "Restate's volume claim"
    answers: list[list[str]] = []  # the deployment URIs Restate listed, poll by poll
    stop = threading.Event()

    def watch(admin: httpx.Client) -> None:
        while not stop.wait(0.2):
            with contextlib.suppress(httpx.HTTPError):  # Restate stopping: the last one stands
                body = admin.get("/deployments").json()
                answers.append(sorted(d.get("uri", "") for d in body["deployments"]))

    with (
        real_cluster.port_forward(release, f"svc/{FULLNAME}-restate", 9070) as url,
        httpx.Client(base_url=url, timeout=2) as admin,
    ):
        watcher = threading.Thread(target=watch, args=(admin,), daemon=True)
        watcher.start()
        try:
            eventually(lambda: answers, 30, "a first answer of Restate's admin API")
            _uninstall(real_cluster, release)
        finally:
            stop.set()
            watcher.join(10)
    assert len(answers[0]) >= 4, answers[0]  # the four examples (and versions draining)
    assert answers[-1] == [], answers[-1]  # none left in Restate when it went

    kinds = _namespaced_kinds(real_cluster)

    def left() -> set[str]:
        """What the namespace holds, as kind/name (``role.rbac.authorization.k8s.io/x`` is
        ``role/x``), less what is kept."""
        names = real_cluster.kubectl("-n", release, "get", kinds, "-o", "name").split()
        kind_name = (n.split("/", 1) for n in names)
        return {f"{kind.split('.', 1)[0]}/{name}" for kind, name in kind_name} - kept

    def clean() -> bool:
        return not left()

    try:
        eventually(clean, 180, "nothing of the release left in its namespace", interval=2)
    except TimeoutError:
        raise AssertionError(f"left in {release}: {sorted(left())}") from None

    def volumes() -> list[str]:  # the provisioner deletes a released volume a moment later
        return [
            v["metadata"]["name"]
            for v in _json(real_cluster, "get", "pv")["items"]
            if (v["spec"].get("claimRef") or {}).get("namespace") == release
            and v["spec"]["claimRef"]["name"] in claims
        ]

    eventually(lambda: not volumes(), 180, f"the volumes of {sorted(claims)} deleted", interval=2)


# ----------------------------------------------------------------------------- replicated


def test_replicated_restate(real_cluster: RealCluster) -> None:
    """Three Restate nodes, provisioned during `helm install --wait`; one node deleted loses
    nothing. The CPU requests are lowered so three nodes fit a 2-core machine."""
    namespace = f"{NAMESPACE}-replicated"
    installed = _install(
        real_cluster,
        namespace,
        "--set",
        "restate.replicated.enabled=true",
        "--set",
        "restate.resources.requests.cpu=100m",
        "--set",
        "restate.resources.requests.memory=512Mi",
    )
    try:
        ready = _wait_registrations(real_cluster, namespace)
        print(f"\nreplicated: helm install --wait {installed:.1f} s, registrations {ready:.1f} s")
        sts = _json(real_cluster, "-n", namespace, "get", "statefulset", f"{FULLNAME}-restate")
        assert sts["status"].get("readyReplicas") == 3
        _greeting_survives(real_cluster, namespace, f"{FULLNAME}-restate-1", wait=False)
    finally:
        _uninstall(real_cluster, namespace)
