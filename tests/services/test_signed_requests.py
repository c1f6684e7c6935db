"""Signed requests: with identity keys set, a service serves only its Restate server."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from testkit.processes import wait_until
from testkit.restate import ExampleService, RestateServer, Suite


def test_only_signed_requests_are_served(restate_bin: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "identity.pem"
    key_file.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = RestateServer(
        restate_bin,
        tmp_path,
        {"RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(key_file)},
    )
    server.start()
    suite = Suite(server)
    try:
        # The server logs the public key its signatures verify against.
        def public_key() -> str | None:
            found = re.search(r"publickeyv1_\w+", server.process.log_text())
            return found.group(0) if found else None

        wait_until(lambda: public_key() is not None, 30, "the server to log its public key")
        service = ExampleService(
            "user-object", tmp_path, {"RESTATE_IDENTITY_KEYS": str(public_key())}
        )
        suite.services["user-object"] = service
        service.start()

        unsigned = httpx.get(f"{service.url}/discover", headers={"accept": "application/json"})
        assert unsigned.status_code == 401

        suite.register_all()  # discovery is signed by the server
        answer = suite.ingress.post("/GreeterObject/signed/greet", json="Hi")
        assert answer.json() == "Hi signed for the 1-th time."
        # Under a path prefix too, as the operator registers each revision (`/rev-<hash>`):
        # the signature covers the path the service sees.
        prefixed = server.register(f"{service.url}/rev-test")
        latest = server.query("SELECT deployment_id FROM sys_service WHERE name = 'GreeterObject'")
        assert latest == [{"deployment_id": prefixed["id"]}]
        answer = suite.ingress.post("/GreeterObject/signed/greet", json="Hi")
        assert answer.json() == "Hi signed for the 2-th time."
        # Operations endpoints stay open for probes and scrapers.
        assert httpx.get(f"{service.url}/readyz").status_code == 200
    finally:
        suite.close()


def test_a_server_with_another_key_is_refused(suite: Suite, tmp_path: Path) -> None:
    # A valid public key whose private key nobody has (the suite's server signs nothing).
    wrong = "publickeyv1_9y7rvdB8Xt5wrRxJGPwbkG3XviRxpmb7YeASWFXrDmWQ"
    service = ExampleService("user-object", tmp_path, {"RESTATE_IDENTITY_KEYS": wrong})
    service.start()
    try:
        answer = suite.server.admin.post("/deployments", json={"uri": service.url})
        assert answer.status_code >= 400 and "401" in answer.text
    finally:
        service.stop()
