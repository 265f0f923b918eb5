"""Reading secrets from Vault through the VaultConnection block and VaultSecretReader: versions,
one read per path, token renewal, logins, and every fault named without a value."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from blocks.vault import VaultConnection
from envforge.errors import (
    ConfigurationError,
    SecretNotFoundError,
    VaultAuthError,
    VaultPermissionError,
    VaultSealedError,
    VaultUnreachableError,
)
from envforge.secrets.redaction import SecretRedactor
from envforge.secrets.references import parse_reference
from envforge.secrets.vault import VaultSecretReader
from tests.integration.secrets.conftest import ClusterTarget, VaultTarget
from tests.openbao import OpenBao, start_openbao

V1 = "pw-version-one-1111"
V2 = "pw-version-two-2222"


@pytest.fixture
def seeded(vault_target: VaultTarget) -> VaultTarget:
    base = vault_target.prefix
    vault_target.put_secret(f"{base}/db", {"username": "app", "password": V1})
    vault_target.put_secret(f"{base}/db", {"username": "app", "password": V2})
    vault_target.put_secret(f"{base}/api", {"token": "api-token-3333", "port": 8080})
    vault_target.put_secret(f"{base}/legacy", {"key": "kv-one-value-4444"}, mount="kv1")
    return vault_target


def reader_for(target: VaultTarget, token: str | None = None, kv_version: int = 2
               ) -> VaultSecretReader:
    connection = VaultConnection(address=target.address,
                                 token=SecretStr(token or target.root_token),
                                 kv_version=kv_version)  # type: ignore[arg-type]
    reader = connection.get_reader()
    reader.redactor = SecretRedactor()
    return reader


def assert_no_values(text: str) -> None:
    for value in (V1, V2, "api-token-3333", "kv-one-value-4444"):
        assert value not in text


def test_reads_latest_and_pinned_versions_each_path_once(seeded: VaultTarget) -> None:
    reader = reader_for(seeded)
    base = seeded.prefix
    refs = [parse_reference(f"vault:kv/{base}/db#password"),
            parse_reference(f"vault:kv/{base}/db#username"),
            parse_reference(f"vault:kv/{base}/db#password@1"),
            parse_reference(f"vault:kv/{base}/api#port")]
    values = reader.read_all(refs * 3)
    assert values[refs[0]] == V2 and values[refs[2]] == V1
    assert values[refs[1]] == "app" and values[refs[3]] == "8080"
    assert reader.reads == 3  # db latest, db@1, api: each once however often referenced
    if seeded.bao is not None:  # the audit log: two reads of db (latest, version 1)
        assert seeded.bao.reads(f"kv/data/{base}/db") == 2
    assert reader.redactor.scrub(f"x {V2} {V1}") == "x ******** ********"


def test_reads_kv_version_1(seeded: VaultTarget) -> None:
    reader = reader_for(seeded, kv_version=1)
    ref = parse_reference(f"vault:kv1/{seeded.prefix}/legacy#key")
    assert reader.read(ref) == "kv-one-value-4444"
    with pytest.raises(SecretNotFoundError, match="version pinning needs KV version 2"):
        reader.read(parse_reference(f"vault:kv1/{seeded.prefix}/legacy#key@2"))


def test_unknown_path_names_path_and_auth_method(seeded: VaultTarget) -> None:
    with pytest.raises(SecretNotFoundError) as info:
        reader_for(seeded).read(parse_reference(f"vault:kv/{seeded.prefix}/nope#password"))
    message = str(info.value)
    assert f"kv/{seeded.prefix}/nope" in message and "auth method token" in message


def test_unknown_version_is_not_found(seeded: VaultTarget) -> None:
    with pytest.raises(SecretNotFoundError, match="@9"):
        reader_for(seeded).read(parse_reference(f"vault:kv/{seeded.prefix}/db#password@9"))


def test_unknown_key_lists_key_names_but_no_value(seeded: VaultTarget) -> None:
    with pytest.raises(SecretNotFoundError) as info:
        reader_for(seeded).read(parse_reference(f"vault:kv/{seeded.prefix}/db#pasword"))
    message = str(info.value)
    assert "'pasword'" in message and "password, username" in message
    assert_no_values(message)


def test_permission_denied_names_path_and_auth_method(seeded: VaultTarget) -> None:
    token = seeded.token_for([f"kv/data/{seeded.prefix}/api"])
    reader = reader_for(seeded, token=token)
    assert reader.read(parse_reference(f"vault:kv/{seeded.prefix}/api#token")) == "api-token-3333"
    with pytest.raises(VaultPermissionError) as info:
        reader.read(parse_reference(f"vault:kv/{seeded.prefix}/db#password"))
    message = str(info.value)
    assert f"kv/{seeded.prefix}/db" in message and "auth method token" in message
    assert_no_values(message)


def test_sealed_vault_is_named(seeded: VaultTarget, openbao: OpenBao) -> None:
    reader = reader_for(seeded)
    with openbao.sealed():
        with pytest.raises(VaultSealedError, match="sealed; unseal it"):
            reader.read(parse_reference(f"vault:kv/{seeded.prefix}/db#password"))
        with pytest.raises(VaultSealedError):
            reader_for(seeded)  # logging in fails the same way


def test_unreachable_vault_is_a_temporary_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    connection = VaultConnection(address=f"http://127.0.0.1:{port}", token=SecretStr("t"),
                                 timeout_seconds=2)
    with pytest.raises(VaultUnreachableError) as info:
        connection.get_client()
    assert f"127.0.0.1:{port}" in str(info.value) and "auth method token" in str(info.value)


def test_bad_token_is_an_auth_error(seeded: VaultTarget) -> None:
    with pytest.raises(VaultAuthError, match="auth method token"):
        reader_for(seeded, token="hvs.not-a-token")


def test_short_lived_token_is_renewed(seeded: VaultTarget) -> None:
    token = seeded.token_for([f"kv/data/{seeded.prefix}/*"], ttl=20)
    reader = reader_for(seeded, token=token)
    reader.read(parse_reference(f"vault:kv/{seeded.prefix}/db#password"))
    assert reader.client.auth.token.lookup_self()["data"]["ttl"] > 15
    if seeded.bao is not None:
        accessor = reader.client.auth.token.lookup_self()["data"]["accessor"]
        renewals = [r for r in seeded.bao.audited()
                    if r.path == "auth/token/renew-self" and r.accessor == accessor]
        assert len(renewals) == 1


def test_expired_login_is_repeated(openbao: OpenBao, seeded: VaultTarget) -> None:
    role_id, secret_id = f"role-{seeded.prefix}", f"secret-{seeded.prefix}"
    # tokens of this role live 2 s and cannot be renewed past that: the reader must log in again
    openbao.add_approle(role_id, secret_id, [f"kv/data/{seeded.prefix}/*"], ttl=2)
    connection = VaultConnection(address=seeded.address, auth_method="approle",
                                 role_id=role_id, secret_id=SecretStr(secret_id))
    reader = connection.get_reader()
    first = reader.client.token
    time.sleep(2.2)
    assert reader.read(parse_reference(f"vault:kv/{seeded.prefix}/api#token")) == "api-token-3333"
    assert reader.client.token != first


def ca_and_token(kubeconfig: Path) -> tuple[str, str]:
    """The API server's CA certificate (PEM) and the admin's bearer token, from the
    session's kubeconfig (kubernetes.sh writes a CA file and a static token)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    return Path(cluster["certificate-authority"]).read_text(), config["users"][0]["user"]["token"]


def test_approle_and_kubernetes_logins(openbao: OpenBao, seeded: VaultTarget,
                                       cluster_target: ClusterTarget) -> None:
    role_id = f"role-2-{seeded.prefix}"
    openbao.add_approle(role_id, "secret-2", [f"kv/data/{seeded.prefix}/*"])
    # Kubernetes login: OpenBao checks the ServiceAccount token with a TokenReview on the
    # session's real API server
    plane = cluster_target.plane
    account = f"vault-reader-{seeded.prefix[-8:]}"
    plane.kubectl("create", "serviceaccount", "-n", "default", account)
    jwt = plane.kubectl("create", "token", "-n", "default", account,
                        "--duration=1h").stdout.strip()
    ca_cert, admin_token = ca_and_token(plane.kubeconfig)
    openbao.add_kubernetes_role("envforge", plane.server, ca_cert, admin_token, account,
                                "default", [f"kv/data/{seeded.prefix}/*"])
    ref = parse_reference(f"vault:kv/{seeded.prefix}/db#password")
    approle = VaultConnection(address=seeded.address, auth_method="approle", role_id=role_id,
                              secret_id=SecretStr("secret-2"))
    assert approle.get_reader().read(ref) == V2
    kube = VaultConnection(address=seeded.address, auth_method="kubernetes",
                           kubernetes_role="envforge", kubernetes_jwt=SecretStr(jwt))
    assert kube.get_reader().read(ref) == V2
    bad = VaultConnection(address=seeded.address, auth_method="approle", role_id=role_id,
                          secret_id=SecretStr("wrong"))
    with pytest.raises(VaultAuthError, match="auth method approle"):
        bad.get_client()
    other = plane.kubectl("create", "token", "-n", "default", "default",
                          "--duration=1h").stdout.strip()  # a real token, another account
    wrong_jwt = kube.model_copy(update={"kubernetes_jwt": SecretStr(other)})
    with pytest.raises(VaultAuthError, match="auth method kubernetes"):
        wrong_jwt.get_client()


def test_block_from_environment_and_missing_settings() -> None:
    connection = VaultConnection.from_environment(
        {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "t", "VAULT_SKIP_VERIFY": "true"})
    assert connection.address == "http://127.0.0.1:1" and connection.tls_verify is False
    with pytest.raises(ConfigurationError, match="VAULT_ADDR"):
        VaultConnection.from_environment({})
    with pytest.raises(ConfigurationError, match="needs role_id"):
        VaultConnection(address="http://x", auth_method="approle").get_client()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_with_and_without_the_ca_bundle(tmp_path: Path) -> None:
    """A second OpenBao of this test's own, listening with TLS only."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    bao = start_openbao(tmp_path / "openbao", tls=(str(cert), str(key)))
    try:
        assert bao.address.startswith("https://")
        bao.put_secret("tls/app", {"k": "over-tls-5555"})
        ref = parse_reference("vault:kv/tls/app#k")
        token = SecretStr(bao.root_token)
        with pytest.raises(VaultUnreachableError, match="TLS failed"):
            VaultConnection(address=bao.address, token=token).get_client()
        trusted = VaultConnection(address=bao.address, token=token, ca_bundle=cert.read_text())
        assert trusted.get_reader().read(ref) == "over-tls-5555"
        by_path = VaultConnection(address=bao.address, token=token, ca_bundle=str(cert))
        assert by_path.get_reader().read(ref) == "over-tls-5555"
        unverified = VaultConnection(address=bao.address, token=token, tls_verify=False)
        assert unverified.get_reader().read(ref) == "over-tls-5555"
    finally:
        bao.stop()
