"""envforge.db.roles without a server: the SCRAM-SHA-256 verifier against RFC 7677's worked
exchange (a server holding only the verifier must accept the RFC's client proof and answer the
RFC's server signature), its format and refusals, and the role's name."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from envforge.db.roles import SCRAM_ITERATIONS, role_name, scram_verifier
from envforge.errors import UnsafeTargetError

# RFC 7677 section 3: user "user", password "pencil"
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_AUTH_MESSAGE = (f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={RFC_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,"
                    f"i=4096,c=biws,r={RFC_NONCE}").encode()
RFC_CLIENT_PROOF = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

VERIFIER = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")


def parts(verifier: str) -> tuple[int, bytes, bytes, bytes]:
    match = VERIFIER.match(verifier)
    assert match, verifier
    return (int(match[1]), base64.b64decode(match[2]), base64.b64decode(match[3]),
            base64.b64decode(match[4]))


def server_accepts(verifier: str, proof: bytes, auth_message: bytes) -> bool:
    """What PostgreSQL's verify_client_proof does with the stored verifier."""
    _, _, stored_key, _ = parts(verifier)
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


def test_the_verifier_accepts_rfc_7677s_client_and_signs_as_its_server() -> None:
    verifier = scram_verifier("pencil", salt=RFC_SALT, iterations=4096)
    iterations, salt, _, server_key = parts(verifier)
    assert (iterations, salt) == (4096, RFC_SALT)
    assert server_accepts(verifier, RFC_CLIENT_PROOF, RFC_AUTH_MESSAGE)
    signature = hmac.new(server_key, RFC_AUTH_MESSAGE, hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == RFC_SERVER_SIGNATURE


def test_another_password_gives_a_verifier_that_refuses_the_rfc_proof() -> None:
    verifier = scram_verifier("pencil2", salt=RFC_SALT, iterations=4096)
    assert not server_accepts(verifier, RFC_CLIENT_PROOF, RFC_AUTH_MESSAGE)


def test_each_verifier_has_a_fresh_salt_and_never_contains_the_password() -> None:
    password = "s3cret-Password_value"
    first, second = scram_verifier(password), scram_verifier(password)
    assert first != second  # a random 16-byte salt each time
    for verifier in (first, second):
        iterations, salt, stored, server = parts(verifier)
        assert (iterations, len(salt), len(stored), len(server)) == (SCRAM_ITERATIONS, 16, 32, 32)
        assert password not in verifier


@pytest.mark.parametrize("password", ["", "pässword", "tab\there"])
def test_a_password_saslprep_would_change_is_refused(password: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        scram_verifier(password)


def test_the_role_is_named_like_the_environments_database() -> None:
    assert role_name("pr-1") == "envforge_pr_1"
    assert role_name("Feature/Login-42") == "envforge_feature_login_42"
    long = role_name("a" * 80)
    assert len(long.encode()) == 63 and long.startswith("envforge_")
    with pytest.raises(UnsafeTargetError, match="no letters or digits"):
        role_name("---")
