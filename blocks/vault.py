"""VaultConnection: where envforge reads secrets from, and how it logs in.

Follows the prefect-kubernetes block shape: described fields, ``SecretStr`` for credentials,
``get_client()`` returning a ready (authenticated) ``hvac.Client``. Without a saved block,
:meth:`VaultConnection.from_environment` reads Vault's own variables (``VAULT_ADDR``,
``VAULT_TOKEN``, ``VAULT_NAMESPACE``, ``VAULT_CACERT``, ``VAULT_SKIP_VERIFY``).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import hvac
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.loading import settings_of
from envforge.errors import ConfigurationError
from envforge.secrets.vault import VaultSecretReader, login
from envforge.settings import EnvforgeSettings

DEFAULT_SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class VaultConnection(Block):
    """Connection to a HashiCorp Vault (or OpenBao) server holding the KV secrets of templates."""

    _block_type_name = "envforge Vault Connection"
    _block_type_slug = "envforge-vault-connection"
    _description = "Address, KV mount and credentials envforge uses to read secrets from Vault."

    address: str = Field(description="Vault address, e.g. https://vault.example.com:8200.")
    namespace: str | None = Field(
        default=None, description="Vault Enterprise/HCP namespace (X-Vault-Namespace)."
    )
    kv_mount: str = Field(default="kv", description="Default KV mount, used by `vars explain`.")
    kv_version: Literal[1, 2] = Field(default=2, description="KV secrets engine version.")
    auth_method: Literal["token", "approle", "kubernetes"] = Field(
        default="token", description="How envforge logs in."
    )
    token: SecretStr | None = Field(default=None, description="Token (auth_method token).")
    role_id: str | None = Field(default=None, description="AppRole role_id.")
    secret_id: SecretStr | None = Field(default=None, description="AppRole secret_id.")
    approle_mount: str = Field(default="approle", description="Mount of the AppRole method.")
    kubernetes_role: str | None = Field(
        default=None, description="Vault role for Kubernetes service account login."
    )
    kubernetes_jwt: SecretStr | None = Field(
        default=None, description="Service account token; default: read from jwt_path."
    )
    kubernetes_jwt_path: str = Field(
        default=DEFAULT_SA_TOKEN, description="File holding the pod's service account token."
    )
    kubernetes_mount: str = Field(default="kubernetes", description="Kubernetes auth mount.")
    tls_verify: bool = Field(default=True, description="Verify Vault's TLS certificate.")
    ca_bundle: str | None = Field(
        default=None, description="CA bundle to trust: a file path or PEM text."
    )
    timeout_seconds: float = Field(default=10.0, description="Timeout of each request.")

    @classmethod
    def from_settings(cls, settings: EnvforgeSettings) -> VaultConnection:
        """A connection from Vault's own variables as the settings read them (token auth)."""
        vault = settings.vault
        if not vault.address:
            raise ConfigurationError(
                "no Vault configured: name a VaultConnection block (vaultBlock) or set "
                "VAULT_ADDR and VAULT_TOKEN"
            )
        return cls(address=vault.address, namespace=vault.namespace, token=vault.token,
                   ca_bundle=vault.ca_cert, tls_verify=not vault.skip_verify)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> VaultConnection:
        """:meth:`from_settings` of ``environ`` (default: the process's settings)."""
        return cls.from_settings(settings_of(environ))

    def _verify(self) -> bool | str:
        if not self.tls_verify:
            return False
        if not self.ca_bundle:
            return True
        if self.ca_bundle.lstrip().startswith("-----BEGIN"):
            # requests wants a file: one per distinct bundle, reused by later clients
            digest = hashlib.sha256(self.ca_bundle.encode()).hexdigest()[:16]
            path = Path(tempfile.gettempdir()) / f"envforge-vault-ca-{digest}.pem"
            if not path.is_file() or path.read_text() != self.ca_bundle:
                path.write_text(self.ca_bundle)
            return str(path)
        if not Path(self.ca_bundle).is_file():
            raise ConfigurationError(f"Vault block: ca_bundle {self.ca_bundle!r} is not a file")
        return self.ca_bundle

    def _credentials(self) -> dict[str, str]:
        def need(value: Any, field: str) -> str:
            if value is None:
                raise ConfigurationError(
                    f"Vault block: auth_method {self.auth_method} needs {field}; set it")
            return value.get_secret_value() if isinstance(value, SecretStr) else str(value)

        if self.auth_method == "token":
            return {"token": need(self.token, "token")}
        if self.auth_method == "approle":
            return {"role_id": need(self.role_id, "role_id"),
                    "secret_id": need(self.secret_id, "secret_id"), "mount": self.approle_mount}
        jwt = self.kubernetes_jwt.get_secret_value() if self.kubernetes_jwt else None
        if jwt is None:
            try:
                jwt = Path(self.kubernetes_jwt_path).read_text().strip()
            except OSError as e:
                raise ConfigurationError(
                    f"Vault block: cannot read the service account token at "
                    f"{self.kubernetes_jwt_path} ({e.strerror}); set kubernetes_jwt or run "
                    "in a pod"
                ) from e
        return {"role": need(self.kubernetes_role, "kubernetes_role"), "jwt": jwt,
                "mount": self.kubernetes_mount}

    def get_client(self) -> hvac.Client:
        """An hvac client, logged in with the configured auth method."""
        client = hvac.Client(url=self.address, namespace=self.namespace, verify=self._verify(),
                             timeout=self.timeout_seconds)
        login(client, self.auth_method, self.address, **self._credentials())
        return client

    def get_reader(self) -> VaultSecretReader:
        """A per-run secret reader over a fresh client (logs in again when a token expires)."""
        return VaultSecretReader(self.get_client(), self.address, self.auth_method,
                                 self.kv_version, relogin=self.get_client)


BLOCK_TYPES = [VaultConnection]
