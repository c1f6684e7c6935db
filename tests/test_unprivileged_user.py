"""The README's two commands as an unprivileged user of this machine, from a fresh clone.

A real Unix user is created for the test (and removed with its home afterwards). As that user,
in a clone of the repository in its home: ``make doctor`` names the root-only tier as skipped
with the reason, ``make -n test`` plans no install for it, and ``make run`` serves the four
examples (the README's requests answered), then stops on Ctrl-C. Nothing host-wide changes:
no iptables chain, mount or sysctl, no Debian package. Restate's npm install is reused
read-only (hard links to root's cache); the virtualenv is installed as a user would.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localcluster import hoststate, local
from testkit.processes import wait_until
from testkit.restate import REPO

pytestmark = [
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("useradd") is None,
        reason="creating a Unix user for the test needs root and useradd",
    ),
    pytest.mark.timeout(1800),
]

PORTS = (8080, 9070, 5122, 9081, 9082, 9083, 9084)
JSON = {"content-type": "application/json"}


def sh(*args: str, timeout: float = 120) -> str:
    return subprocess.run(
        list(args), check=True, capture_output=True, text=True, timeout=timeout
    ).stdout


NODE_MOUNTS = ("kubelet", "containerd", "restate-examples-node", "netns", "/var/lib/cni")


def host_state(node_running: bool) -> dict[str, object]:
    """What a root-only tier would change: iptables chains, mounts, the node's sysctls, the
    Debian packages. While a local node runs (the e2e session's, under the same lock), its own
    chains and mounts come and go with its pods: those are left out, the rest compared."""

    def ours(item: str) -> bool:
        return node_running and any(marker in item for marker in NODE_MOUNTS)

    chains = {}
    for table in ("filter", "nat", "mangle", "raw"):
        if shutil.which("iptables"):
            rules = sh("iptables", "-t", table, "-S").splitlines()
            chains[table] = sorted(
                r
                for r in rules
                if r.startswith(("-N", "-P"))
                and not (node_running and r.split()[1].startswith(hoststate.CHAIN_PREFIXES))
            )
    mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    mounts = sorted(m for m in (line.split()[4] for line in mountinfo) if not ours(m))
    dpkg = ["dpkg-query", "-W", "-f", "${Package} ${Version}\n"]
    packages = sh(*dpkg) if shutil.which("dpkg-query") else ""
    return {
        "chains": chains,
        "mounts": mounts,
        "sysctls": hoststate.read_sysctls(),
        "dpkg": packages,
    }


def held_by_an_ancestor(lock: Path) -> bool:
    """Whether a process this one runs under holds ``lock`` (flock), from /proc/locks."""
    if not lock.exists():
        return False
    inode = lock.stat().st_ino
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
            holders.add(int(fields[4]))
    pid = os.getpid()
    while pid > 1:
        if pid in holders:
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


@contextlib.contextmanager
def node_lock() -> Iterator[None]:
    """The local node's lock (the one `flock` takes around e2e runs): no node starts or stops
    while the host state is compared."""
    if held_by_an_ancestor(local.NODE_LOCK):  # e.g. `flock <lock> make test`: the run holds it
        yield
        return
    with local.NODE_LOCK.open("a") as f:
        deadline = time.monotonic() + 1500
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{local.NODE_LOCK} stayed held by a node run for 25 minutes")
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def unix_user() -> Iterator[pwd.struct_passwd]:
    name = f"rxu{secrets.token_hex(4)}"
    sh("useradd", "--create-home", "--shell", "/bin/bash", name)
    try:
        yield pwd.getpwnam(name)
    finally:
        left = subprocess.run(["pgrep", "-u", name], capture_output=True, text=True).stdout.split()
        sh("userdel", "--remove", name)
        assert not left, f"processes of {name} left running: {left}"
        assert not Path(f"/home/{name}").exists()


def as_user(user: pwd.struct_passwd, command: str) -> list[str]:
    """A login-like environment of ``user``: no root's variables, the machine's PATH."""
    path = ":".join(p for p in os.environ["PATH"].split(":") if ".venv" not in p)
    passed = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k == "LANG"}
    env = [
        f"{k}={v}"
        for k, v in {
            **passed,
            "HOME": user.pw_dir,
            "USER": user.pw_name,
            "LOGNAME": user.pw_name,
            "PATH": path,
        }.items()
    ]
    return [
        "runuser",
        "-u",
        user.pw_name,
        "--",
        "env",
        "-i",
        *env,
        "bash",
        "-c",
        f"cd ~/restate-examples && {command}",
    ]


def busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_unprivileged_user_fresh_clone(restate_bin: Path, tmp_path: Path) -> None:
    taken = [p for p in PORTS if busy(p)]
    if taken:
        pytest.skip(f"make run needs its standard ports; in use here: {taken}")
    with node_lock():
        node_running = local.running() is not None
        before = host_state(node_running)
        with unix_user() as user:
            home = Path(user.pw_dir)
            sh(
                "git",
                "clone",
                "--quiet",
                "--no-hardlinks",
                str(REPO),
                str(home / "restate-examples"),
            )
            # Restate from npm, reused read-only: hard links to root's files (root keeps owning
            # them); the directories above are the user's.
            cache = home / ".cache" / "restate-examples" / "restate"
            cache.mkdir(parents=True)
            sh("cp", "-al", str(restate_bin.parent), str(cache / restate_bin.parent.name))
            sh("chown", "-R", f"{user.pw_name}:", str(home / "restate-examples"))
            sh("chown", f"{user.pw_name}:", str(home / ".cache"), str(cache.parent), str(cache))
            # the copied directories are new (only files are linked): the user's
            sh("find", str(cache), "-type", "d", "-exec", "chown", f"{user.pw_name}:", "{}", "+")

            doctor = subprocess.run(
                as_user(user, "make -s doctor"), capture_output=True, text=True, timeout=120
            )
            print(doctor.stdout)
            assert doctor.returncode == 0, doctor.stderr
            lines = {line.split()[1]: line for line in doctor.stdout.splitlines()[1:-1]}
            assert " runs " in lines["services"], doctor.stdout
            assert " SKIPPED " in lines["real-pods"], doctor.stdout
            assert "needs root" in lines["real-pods"], doctor.stdout
            assert not (home / "restate-examples" / ".venv").exists()  # doctor installed nothing

            plan = subprocess.run(
                as_user(user, "make -n test"), capture_output=True, text=True, timeout=120
            )
            assert plan.returncode == 0, plan.stderr
            assert "scripts/install-restate.sh" in plan.stdout, plan.stdout
            assert "node-packages.sh" not in plan.stdout, plan.stdout

            log = tmp_path / "make-run.log"
            with log.open("w") as out:
                run = subprocess.Popen(
                    as_user(user, "make run"),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                wait_until(
                    lambda: "Try them" in log.read_text() or run.poll() is not None,
                    600,
                    "make run to register the four examples",
                )
                assert run.poll() is None, log.read_text()[-3000:]
                ingress = httpx.Client(base_url="http://localhost:8080", timeout=60)
                greet = ingress.post("/GreeterObject/mary/greet", headers=JSON, content='"Hi"')
                assert (greet.status_code, greet.json()) == (200, "Hi mary for the 1-th time.")
                ungreet = ingress.post("/GreeterObject/mary/ungreet")
                assert ungreet.json() == "Dear mary, taking one greeting back: 0."
                # Its steps fail on purpose: this answer comes after Restate's retries, within
                # the timeout thanks to the retry policy make run gives Restate.
                add = ingress.post(
                    "/SubscriptionService/add",
                    headers=JSON,
                    content='{"userId": "Sam Beckett", "creditCard": "1234-5678-9012-3456",'
                    ' "subscriptions": ["Netflix", "Disney+", "HBO Max"]}',
                )
                assert (add.status_code, add.content) == (200, b""), add.text
                blocks = ingress.post("/MyService/run/send", headers={"idempotency-key": "u1"})
                assert blocks.status_code == 202, blocks.text
                awakeables = httpx.get("http://localhost:9082/awakeables", timeout=30)
                assert awakeables.status_code == 200, awakeables.text
                signup = ingress.post(
                    "/SignupWorkflow/userid1/run/send",
                    headers=JSON,
                    content='{ "name": "Bob", "email": "bob@builder.com" }',
                )
                assert signup.status_code == 202 and signup.json()["status"] == "Accepted"
            finally:
                if run.poll() is None:
                    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C, to the user's make and children
                code = run.wait(120)
            text = log.read_text()
            assert code in (0, 130, 2), text[-3000:]
            for name in ("restate-server", "subscriptions", "user-object", "signup-workflow"):
                assert f"{name} stopped (rc=0)" in text, f"{name} did not stop cleanly"
        after = host_state(node_running)
    assert after == before
