"""Reading secrets from Vault's KV engine with hvac: the one place hvac errors are mapped.

One :class:`VaultSecretReader` serves one run: every ``mount/path@version`` is read at most once
(the values stay in memory, registered with the redactor), short-lived tokens are renewed (or
the login repeated) before they run out, and every failure becomes an
:class:`~envforge.errors.VaultError` naming the Vault address, the path and the auth method,
never a value.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import hvac
import hvac.exceptions
import requests

from envforge.errors import (
    SecretNotFoundError,
    VaultAuthError,
    VaultError,
    VaultPermissionError,
    VaultSealedError,
    VaultUnreachableError,
)
from envforge.secrets.redaction import SecretRedactor, default_redactor
from envforge.secrets.references import SecretReference

log = logging.getLogger("envforge.secrets.vault")
#: Renew when less than this share of the token's lifetime (or this many seconds) is left.
RENEW_WHEN_LEFT = 0.34
RENEW_MIN_SECONDS = 30


@contextmanager
def vault_errors(address: str, auth_method: str, doing: str, path: str = "",
                 api_path: str = "") -> Iterator[None]:
    """Map hvac and requests errors raised inside the block to envforge's VaultErrors.

    ``api_path`` is the path Vault's policies name (``kv/data/app/db`` for ``kv/app/db``)."""
    what = f"{doing} {path}".strip()
    where = f"Vault at {address} ({what}, auth method {auth_method})"
    try:
        yield
    except hvac.exceptions.Forbidden as e:
        if path:
            raise VaultPermissionError(
                f"{where}: permission denied: the token's policies grant no '{doing}' "
                f"capability on {api_path or path}; grant it there or fix the reference"
            ) from e
        raise VaultAuthError(f"{where}: login or token refused (permission denied); check the "
                             "credentials in the Vault block") from e
    except hvac.exceptions.InvalidPath as e:
        if not path:
            raise VaultAuthError(f"{where}: no such endpoint; is the auth method enabled at "
                                 "the mount the Vault block names?") from e
        raise SecretNotFoundError(
            f"{where}: no secret there (or that version is deleted); check the mount, path and "
            "version of the reference"
        ) from e
    except hvac.exceptions.VaultDown as e:
        raise VaultSealedError(f"{where}: Vault is sealed; unseal it and run again") from e
    except (hvac.exceptions.InvalidRequest, hvac.exceptions.Unauthorized) as e:
        reason = "; ".join(str(x) for x in (e.errors or [])) or "invalid request"
        if not path:
            raise VaultAuthError(f"{where}: login refused: {reason}; check the role and "
                                 "credentials in the Vault block") from e
        raise VaultError(f"{where}: request refused: {reason}") from e
    except hvac.exceptions.VaultError as e:
        raise VaultError(f"{where}: Vault answered an error ({type(e).__name__}); see Vault's "
                         "server log for the cause") from e
    except requests.exceptions.SSLError as e:
        raise VaultUnreachableError(f"{where}: TLS failed; check tls_verify and ca_bundle of "
                                    "the Vault block") from e
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
        raise VaultUnreachableError(
            f"{where}: Vault did not answer ({type(e).__name__}); check the address and that "
            "Vault is running and reachable"
        ) from e


def login(client: hvac.Client, auth_method: str, address: str, **credentials: str) -> None:
    """Authenticate ``client`` with ``token``, ``approle`` or ``kubernetes`` credentials."""
    with vault_errors(address, auth_method, "login"):
        if auth_method == "token":
            client.token = credentials["token"]
            client.auth.token.lookup_self()  # proves the token is valid now, not at first read
        elif auth_method == "approle":
            client.auth.approle.login(role_id=credentials["role_id"],
                                      secret_id=credentials["secret_id"],
                                      mount_point=credentials.get("mount", "approle"))
        elif auth_method == "kubernetes":
            client.auth.kubernetes.login(role=credentials["role"], jwt=credentials["jwt"],
                                         mount_point=credentials.get("mount", "kubernetes"))
        else:
            raise VaultAuthError(f"unknown Vault auth method {auth_method!r}; use token, "
                                 "approle or kubernetes")


class VaultSecretReader:
    """Reads secret values for one run: each path once, token kept fresh, errors mapped."""

    def __init__(
        self,
        client: hvac.Client,
        address: str,
        auth_method: str = "token",
        kv_version: int = 2,
        relogin: Callable[[], hvac.Client] | None = None,
        redactor: SecretRedactor | None = None,
    ) -> None:
        self.client = client
        self.address = address
        self.auth_method = auth_method
        self.kv_version = kv_version
        self.relogin = relogin
        self.redactor = redactor or default_redactor()
        self.reads = 0
        self._cache: dict[tuple[str, str, int | None], dict[str, Any]] = {}
        self._next_token_check = 0.0
        self._lock = threading.Lock()

    def read(self, ref: SecretReference) -> str:
        """The value of one reference (fetched once per path and version)."""
        data = self._read_path(ref)
        if ref.key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise SecretNotFoundError(
                f"Vault at {self.address} (read {ref.location}, auth method "
                f"{self.auth_method}): no key {ref.key!r} in the secret (keys: {keys}); fix "
                "the #key of the reference"
            )
        value = _as_text(data[ref.key])
        self.redactor.register(value)
        return value

    def read_all(self, refs: Iterable[SecretReference]) -> dict[SecretReference, str]:
        return {ref: self.read(ref) for ref in sorted(set(refs), key=str)}

    def ensure_token_fresh(self) -> None:
        """Renew the token (or log in again) when little of its lifetime is left."""
        now = time.monotonic()
        if now < self._next_token_check:
            return
        try:
            with vault_errors(self.address, self.auth_method, "token lookup"):
                info = self.client.auth.token.lookup_self()["data"]
        except VaultAuthError:
            if self.relogin is None:
                raise
            self.client = self.relogin()  # the token expired already: log in again
            log.info("Vault token (%s auth) had expired; logged in again", self.auth_method)
            self._next_token_check = now + RENEW_MIN_SECONDS
            return
        ttl, created_ttl = int(info.get("ttl") or 0), int(info.get("creation_ttl") or 0)
        if ttl == 0:  # a token that never expires (root, or periodic without TTL)
            self._next_token_check = now + 300
            return
        threshold = max(RENEW_MIN_SECONDS, int(created_ttl * RENEW_WHEN_LEFT))
        if ttl <= threshold:
            if info.get("renewable"):
                with vault_errors(self.address, self.auth_method, "token renewal"):
                    renewed = self.client.auth.token.renew_self()
                ttl = int(renewed["auth"]["lease_duration"] or ttl)
                log.info("renewed the Vault token (%s auth); new TTL %ss", self.auth_method, ttl)
            elif self.relogin is not None:
                self.client = self.relogin()
                log.info("Vault token (%s auth) was about to expire; logged in again",
                         self.auth_method)
                self._next_token_check = now + RENEW_MIN_SECONDS
                return
        self._next_token_check = now + max(1.0, (ttl - threshold) / 2)

    def _read_path(self, ref: SecretReference) -> dict[str, Any]:
        key = (ref.mount, ref.path, ref.version)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            if ref.version is not None and self.kv_version != 2:
                raise SecretNotFoundError(
                    f"{ref}: version pinning needs KV version 2, but the Vault block says mount "
                    f"{ref.mount!r} is KV version 1; drop '@{ref.version}' or fix kv_version"
                )
            self.ensure_token_fresh()
            api_path = (f"{ref.mount}/data/{ref.path}" if self.kv_version == 2
                        else ref.location)
            with vault_errors(self.address, self.auth_method, "read", ref.location, api_path):
                if self.kv_version == 2:
                    response = self.client.secrets.kv.v2.read_secret_version(
                        path=ref.path, version=ref.version, mount_point=ref.mount,
                        raise_on_deleted_version=True)
                    data = (response.get("data") or {}).get("data") or {}
                else:
                    response = self.client.secrets.kv.v1.read_secret(
                        path=ref.path, mount_point=ref.mount)
                    data = response.get("data") or {}
            self.reads += 1
            self._cache[key] = data
            log.info("read %s from Vault (%d key(s))", ref.location, len(data))
            return data

    def forget(self) -> None:
        """Drop every value read so far (end of run)."""
        with self._lock:
            self._cache.clear()


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True)
