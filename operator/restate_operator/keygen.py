"""Creates the request-identity key pair of a Restate server, once, and keeps it.

Restate signs every request it sends to a service with an ed25519 private key; the services
accept only requests signed by a key they know as ``publickeyv1_<base58 of the raw 32-byte
public key>``. Helm cannot derive that public id from a private key, so the chart runs this
module as a pre-install/pre-upgrade hook Job:

    python -m restate_operator.keygen --namespace NS \\
        --private-secret RELEASE-restate-identity --public-configmap RELEASE-restate-identity-public

- If the Secret does not exist, a new key pair is generated and the Secret (key ``private.pem``,
  PKCS#8 PEM) is created; an existing Secret is never replaced, so upgrades keep the key.
- The ConfigMap (key ``publicKey``) is created from the Secret's key if missing, and corrected
  if it holds another public key (it is derived data).

The Job's ServiceAccount needs: ``get`` on that Secret and ConfigMap (by name), ``create`` on
secrets and configmaps, ``patch`` on that ConfigMap (by name). Nothing else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "PRIVATE_KEY_FIELD",
    "PUBLIC_KEY_FIELD",
    "KeyPair",
    "Outcome",
    "b58encode",
    "ensure_identity",
    "generate_private_key_pem",
    "main",
    "public_key_id",
]

PUBLIC_KEY_PREFIX = "publickeyv1_"
PRIVATE_KEY_FIELD = "private.pem"
PUBLIC_KEY_FIELD = "publicKey"
MANAGED_BY = "restate-examples-keygen"
B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

logger = logging.getLogger("restate_operator.keygen")


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet, as the ``bs58`` crate Restate uses); leading zero bytes
    become leading ``1`` characters."""
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number > 0:
        number, remainder = divmod(number, 58)
        digits.append(B58_ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(digits))


def _load_private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"not an unencrypted PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"expected an ed25519 private key, got {type(key).__name__}")
    return key


def public_key_id(private_key_pem: bytes) -> str:
    """The ``publickeyv1_...`` id Restate logs for this PEM private key and services verify."""
    raw = (
        _load_private_key(private_key_pem)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return PUBLIC_KEY_PREFIX + b58encode(raw)


def generate_private_key_pem() -> bytes:
    """A new ed25519 private key as unencrypted PKCS#8 PEM (what ``openssl genpkey`` writes)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class KeyPair:
    private_key_pem: bytes
    public_key: str


@dataclass(frozen=True)
class Outcome:
    """What :func:`ensure_identity` found and did."""

    key_pair: KeyPair
    created_secret: bool
    configmap_action: str  # "created", "updated" or "unchanged"


class IdentityStore(Protocol):
    """Storage for the key pair: a Secret and a ConfigMap (Kubernetes, or a fake in tests)."""

    def read_secret(self, name: str) -> Mapping[str, bytes] | None: ...

    def create_secret(self, name: str, data: Mapping[str, bytes]) -> bool:
        """Create it; False if it already exists (someone else won the race)."""
        ...

    def read_configmap(self, name: str) -> Mapping[str, str] | None: ...

    def create_configmap(self, name: str, data: Mapping[str, str]) -> bool: ...

    def replace_configmap_data(self, name: str, data: Mapping[str, str]) -> None: ...


def _pair_from_secret(name: str, data: Mapping[str, bytes]) -> KeyPair:
    pem = data.get(PRIVATE_KEY_FIELD)
    if not pem:
        raise ValueError(f"Secret {name!r} has no {PRIVATE_KEY_FIELD!r} key")
    try:
        return KeyPair(pem, public_key_id(pem))
    except ValueError as error:
        raise ValueError(f"Secret {name!r}, key {PRIVATE_KEY_FIELD!r}: {error}") from None


def ensure_identity(store: IdentityStore, private_secret: str, public_configmap: str) -> Outcome:
    """Make sure the Secret holds a private key and the ConfigMap its public id; never
    replaces an existing private key."""
    created = False
    data = store.read_secret(private_secret)
    if data is None:
        pem = generate_private_key_pem()
        created = store.create_secret(private_secret, {PRIVATE_KEY_FIELD: pem})
        if not created:  # created concurrently: use the winner's key
            data = store.read_secret(private_secret)
            if data is None:
                raise RuntimeError(f"Secret {private_secret!r} exists but cannot be read")
        else:
            data = {PRIVATE_KEY_FIELD: pem}
    pair = _pair_from_secret(private_secret, data)

    wanted = {PUBLIC_KEY_FIELD: pair.public_key}
    current = store.read_configmap(public_configmap)
    if current is None:
        action = "created"
        if not store.create_configmap(public_configmap, wanted):
            current = store.read_configmap(public_configmap)
    if current is not None:
        if current.get(PUBLIC_KEY_FIELD) == pair.public_key:
            action = "unchanged"
        else:
            store.replace_configmap_data(public_configmap, wanted)
            action = "updated"
    return Outcome(pair, created, action)


class KubernetesStore:
    """:class:`IdentityStore` on the Kubernetes API (in-cluster config, else kubeconfig)."""

    def __init__(self, namespace: str, labels: Mapping[str, str]) -> None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        self._client: Any = client
        self._core: Any = client.CoreV1Api()
        self.namespace = namespace
        self.labels = {"app.kubernetes.io/managed-by": MANAGED_BY, **labels}

    def _meta(self, name: str) -> Any:
        return self._client.V1ObjectMeta(name=name, namespace=self.namespace, labels=self.labels)

    def _read(self, kind: str, name: str) -> Any:
        from kubernetes.client import ApiException

        try:
            return getattr(self._core, f"read_namespaced_{kind}")(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _create(self, kind: str, body: Any) -> bool:
        from kubernetes.client import ApiException

        try:
            getattr(self._core, f"create_namespaced_{kind}")(self.namespace, body)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def read_secret(self, name: str) -> Mapping[str, bytes] | None:
        import base64

        secret = self._read("secret", name)
        if secret is None:
            return None
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def create_secret(self, name: str, data: Mapping[str, bytes]) -> bool:
        import base64

        body = self._client.V1Secret(
            metadata=self._meta(name),
            type="Opaque",
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
        )
        return self._create("secret", body)

    def read_configmap(self, name: str) -> Mapping[str, str] | None:
        configmap = self._read("config_map", name)
        if configmap is None:
            return None
        return dict(configmap.data or {})

    def create_configmap(self, name: str, data: Mapping[str, str]) -> bool:
        body = self._client.V1ConfigMap(metadata=self._meta(name), data=dict(data))
        return self._create("config_map", body)

    def replace_configmap_data(self, name: str, data: Mapping[str, str]) -> None:
        self._core.patch_namespaced_config_map(name, self.namespace, {"data": dict(data)})


def _parse_labels(values: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--label expects key=value, got {value!r}")
        labels[key] = val
    return labels


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m restate_operator.keygen",
        description="Create Restate's request-identity key pair (Secret + ConfigMap) if missing.",
    )
    parser.add_argument("--namespace", help="namespace of the Secret and the ConfigMap")
    parser.add_argument("--private-secret", help="Secret for the private key")
    parser.add_argument("--public-configmap", help="ConfigMap for the public id")
    parser.add_argument(
        "--label", action="append", default=[], help="key=value label for created objects"
    )
    parser.add_argument(
        "--print-public-key",
        metavar="PEM_FILE",
        help="only print the publickeyv1_ id of this PEM private key ('-' for stdin) and exit",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.print_public_key:
        if args.print_public_key == "-":
            pem = sys.stdin.buffer.read()
        else:
            with open(args.print_public_key, "rb") as file:
                pem = file.read()
        print(public_key_id(pem))
        return 0
    missing = [
        flag
        for flag, value in (
            ("--namespace", args.namespace),
            ("--private-secret", args.private_secret),
            ("--public-configmap", args.public_configmap),
        )
        if not value
    ]
    if missing:
        parser.error(f"missing {', '.join(missing)}")

    try:
        store = KubernetesStore(args.namespace, _parse_labels(args.label))
        outcome = ensure_identity(store, args.private_secret, args.public_configmap)
    except (ValueError, argparse.ArgumentTypeError) as error:
        logger.error("%s", error)
        return 2
    logger.info(
        "Secret %s/%s: %s; ConfigMap %s/%s: %s; public key %s",
        args.namespace,
        args.private_secret,
        "created" if outcome.created_secret else "kept (already present)",
        args.namespace,
        args.public_configmap,
        outcome.configmap_action,
        outcome.key_pair.public_key,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
