"""Block settings that need no server: TLS options, credentials per auth method, cluster
sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks.kubernetes import KubernetesCluster
from blocks.vault import VaultConnection
from envforge.errors import ConfigurationError

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_tls_verification_options(tmp_path: Path) -> None:
    assert VaultConnection(address="https://v", tls_verify=False)._verify() is False
    assert VaultConnection(address="https://v")._verify() is True
    bundle = tmp_path / "ca.pem"
    bundle.write_text(PEM)
    assert VaultConnection(address="https://v", ca_bundle=str(bundle))._verify() == str(bundle)
    written = VaultConnection(address="https://v", ca_bundle=PEM)._verify()
    assert isinstance(written, str) and Path(written).read_text() == PEM
    Path(written).unlink()
    with pytest.raises(ConfigurationError, match="ca_bundle"):
        VaultConnection(address="https://v", ca_bundle=str(tmp_path / "none.pem"))._verify()


def test_credentials_per_auth_method(tmp_path: Path) -> None:
    jwt = tmp_path / "token"
    jwt.write_text("sa-jwt\n")
    kube = VaultConnection(address="https://v", auth_method="kubernetes",
                           kubernetes_role="envforge", kubernetes_jwt_path=str(jwt))
    assert kube._credentials() == {"role": "envforge", "jwt": "sa-jwt", "mount": "kubernetes"}
    approle = VaultConnection(address="https://v", auth_method="approle", role_id="r",
                              secret_id=SecretStr("s"), approle_mount="ar")
    assert approle._credentials() == {"role_id": "r", "secret_id": "s", "mount": "ar"}
    with pytest.raises(ConfigurationError, match="service account token"):
        VaultConnection(address="https://v", auth_method="kubernetes", kubernetes_role="x",
                        kubernetes_jwt_path=str(tmp_path / "none"))._credentials()
    with pytest.raises(ConfigurationError, match="needs token"):
        VaultConnection(address="https://v")._credentials()


def test_secrets_do_not_show_in_the_block_repr() -> None:
    block = VaultConnection(address="https://v", token=SecretStr("hvs.very-secret-token"))
    assert "very-secret-token" not in repr(block) and "very-secret-token" not in str(block)


def test_cluster_sources(tmp_path: Path) -> None:
    assert KubernetesCluster.from_environment({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}).in_cluster
    with pytest.raises(ConfigurationError, match="not a YAML mapping"):
        KubernetesCluster(kubeconfig=SecretStr("just text")).get_client()
    with pytest.raises(ConfigurationError, match="set kubeconfig, kubeconfig_path or in_cluster"):
        KubernetesCluster().get_client()
    assert "context dev" in KubernetesCluster(kubeconfig_path="/k", context="dev").describe()
