"""restate_operator.keygen: the publickeyv1_ encoding (against ids the real restate-server
logged), and the keep-the-key logic of the install/upgrade hook."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from restate_operator import keygen
from testkit.ports import free_port

# RFC 8032, section 7.1, TEST 1: secret key 9d61b1...7f60, public key d75a98...511a.
# restate-server 1.7.12 logged for this PEM:
#   Loaded request identity key kid="publickeyv1_FVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z"
RFC8032_PEM = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    b"-----END PRIVATE KEY-----\n"
)
RFC8032_PUBLIC_RAW = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_ID = "publickeyv1_FVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z"

RESTATE_SERVER = (
    Path(os.environ.get("RESTATE_EXAMPLES_CACHE", Path.home() / ".cache" / "restate-examples"))
    / "restate"
    / "1.7.12"
    / "bin"
    / "restate-server"
)


def test_known_vector() -> None:
    assert keygen.public_key_id(RFC8032_PEM) == RFC8032_ID


def test_base58() -> None:
    # Bitcoin-alphabet vectors (as in the bs58 crate's tests)
    assert keygen.b58encode(b"") == ""
    assert keygen.b58encode(b"\0") == "1"
    assert keygen.b58encode(b"\0\0\x01") == "112"
    assert keygen.b58encode(b"Hello World!") == "2NEpo7TZRRrLZSi2U"
    assert keygen.b58encode(bytes.fromhex("0000287fb4cd")) == "11233QC4"
    assert keygen.b58encode(bytes.fromhex(RFC8032_PUBLIC_RAW)) == RFC8032_ID.split("_", 1)[1]


def test_rejects_other_keys() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="expected an ed25519 private key"):
        keygen.public_key_id(pem)
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        keygen.public_key_id(b"garbage")


def test_generated_keys_load_back() -> None:
    pem = keygen.generate_private_key_pem()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert re.fullmatch(r"publickeyv1_[1-9A-HJ-NP-Za-km-z]{43,44}", keygen.public_key_id(pem))


def test_cli_prints_public_key(tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(RFC8032_PEM)
    out = subprocess.run(
        [sys.executable, "-m", "restate_operator.keygen", "--print-public-key", str(pem)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": _operator_path()},
    ).stdout
    assert out.strip() == RFC8032_ID


def _operator_path() -> str:
    operator = Path(__file__).resolve().parents[2] / "operator"
    return os.pathsep.join(filter(None, [str(operator), os.environ.get("PYTHONPATH")]))


@pytest.mark.skipif(
    not RESTATE_SERVER.exists(), reason="restate-server not installed (make restate)"
)
def test_matches_restate_server_for_a_fresh_key(tmp_path: Path) -> None:
    """A key generated here: restate-server must log the same id keygen computes."""
    pem = keygen.generate_private_key_pem()
    (tmp_path / "key.pem").write_bytes(pem)
    node, admin, ingress = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DO_NOT_TRACK": "1",
        "RESTATE_LOG_FORMAT": "json",
        "RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(tmp_path / "key.pem"),
        "RESTATE_BIND_ADDRESS": f"127.0.0.1:{node}",
        "RESTATE_ADVERTISED_ADDRESS": f"http://127.0.0.1:{node}",
        "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{admin}",
        "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{ingress}",
    }
    log = tmp_path / "restate.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(RESTATE_SERVER), "--base-dir", str(tmp_path / "data")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            found: list[str] = []
            while not found and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
                found = re.findall(r"publickeyv1_[1-9A-HJ-NP-Za-km-z]+", log.read_text("utf-8"))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert found, f"restate-server logged no key id:\n{log.read_text('utf-8')[-2000:]}"
    assert found[0] == keygen.public_key_id(pem)


class FakeStore:
    """In-memory IdentityStore; ``race_secret`` simulates a concurrent creator."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.configmaps: dict[str, dict[str, str]] = {}
        self.race_secret: dict[str, bytes] | None = None

    def read_secret(self, name: str) -> Mapping[str, bytes] | None:
        return self.secrets.get(name)

    def create_secret(self, name: str, data: Mapping[str, bytes]) -> bool:
        if self.race_secret is not None:
            self.secrets[name] = self.race_secret
            return False
        if name in self.secrets:
            return False
        self.secrets[name] = dict(data)
        return True

    def read_configmap(self, name: str) -> Mapping[str, str] | None:
        return self.configmaps.get(name)

    def create_configmap(self, name: str, data: Mapping[str, str]) -> bool:
        if name in self.configmaps:
            return False
        self.configmaps[name] = dict(data)
        return True

    def replace_configmap_data(self, name: str, data: Mapping[str, str]) -> None:
        self.configmaps[name] = dict(data)


def test_first_run_creates_then_keeps() -> None:
    store = FakeStore()
    first = keygen.ensure_identity(store, "priv", "pub")
    assert first.created_secret and first.configmap_action == "created"
    assert store.configmaps["pub"] == {"publicKey": first.key_pair.public_key}
    assert keygen.public_key_id(store.secrets["priv"]["private.pem"]) == first.key_pair.public_key

    again = keygen.ensure_identity(store, "priv", "pub")  # what every upgrade does
    assert not again.created_secret and again.configmap_action == "unchanged"
    assert again.key_pair == first.key_pair


def test_existing_secret_is_kept_and_configmap_corrected() -> None:
    store = FakeStore()
    store.secrets["priv"] = {"private.pem": RFC8032_PEM}
    store.configmaps["pub"] = {"publicKey": "publickeyv1_stale"}
    outcome = keygen.ensure_identity(store, "priv", "pub")
    assert not outcome.created_secret and outcome.configmap_action == "updated"
    assert store.secrets["priv"] == {"private.pem": RFC8032_PEM}
    assert store.configmaps["pub"] == {"publicKey": RFC8032_ID}


def test_concurrent_creator_wins() -> None:
    store = FakeStore()
    store.race_secret = {"private.pem": RFC8032_PEM}
    outcome = keygen.ensure_identity(store, "priv", "pub")
    assert not outcome.created_secret
    assert outcome.key_pair.public_key == RFC8032_ID
    assert store.configmaps["pub"] == {"publicKey": RFC8032_ID}


def test_broken_secret_is_reported() -> None:
    store = FakeStore()
    store.secrets["priv"] = {"other": b"x"}
    with pytest.raises(ValueError, match=r"has no 'private\.pem' key"):
        keygen.ensure_identity(store, "priv", "pub")
