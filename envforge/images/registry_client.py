"""Talking to a container registry over its HTTP API (/v2/): manifest digests, tags, deletes.

This is the one place registry HTTP errors become envforge errors. Authentication follows the
registry's ``WWW-Authenticate`` challenge: Basic (htpasswd registries) or a Bearer token fetched
from the realm it names (Docker Hub, GHCR, Harbor). Credentials live in :class:`RegistryAccess`
as ``SecretStr`` and never appear in a message.
"""

from __future__ import annotations

import base64
import re
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from envforge.errors import RegistryAuthError, RegistryError, RegistryUnreachableError

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
MAX_TAGS = 1000


@dataclass(frozen=True)
class RegistryAccess:
    """Where a registry is and how to log in: ``address`` is ``host[:port][/namespace]``."""

    address: str
    username: str | None = None
    password: SecretStr | None = None
    tls_verify: bool = True
    ca_cert: str | None = None  # PEM text of an extra CA to trust

    @property
    def host(self) -> str:
        return self.address.split("://", 1)[-1].split("/", 1)[0]

    @property
    def namespace(self) -> str:
        rest = self.address.split("://", 1)[-1].partition("/")[2]
        return rest.strip("/")

    def repository(self, app: str) -> str:
        """The repository path of ``app`` inside this registry (namespace prefixed)."""
        return f"{self.namespace}/{app}" if self.namespace else app

    def image(self, app: str) -> str:
        """``host[:port]/[namespace/]app`` as buildah and manifests name it."""
        return f"{self.host}/{self.repository(app)}"

    def basic_auth(self) -> str | None:
        if not self.username:
            return None
        secret = self.password.get_secret_value() if self.password else ""
        return base64.b64encode(f"{self.username}:{secret}".encode()).decode()


class RegistryClient:
    """A small synchronous client for the parts of the registry API envforge needs."""

    def __init__(self, access: RegistryAccess, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.access = access
        self._ca_file: Path | None = None
        verify: ssl.SSLContext | bool = access.tls_verify
        if access.tls_verify and access.ca_cert:
            with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
                f.write(access.ca_cert)
            self._ca_file = Path(f.name)
            verify = ssl.create_default_context(cafile=str(self._ca_file))
        self._http = httpx.Client(timeout=timeout, verify=verify, transport=transport)
        explicit = access.address.split("://", 1)[0] if "://" in access.address else None
        self._schemes = [explicit] if explicit else (
            ["https"] if access.tls_verify else ["https", "http"])
        self._authorization: str | None = None

    def close(self) -> None:
        self._http.close()
        if self._ca_file is not None:
            self._ca_file.unlink(missing_ok=True)

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- API -------------------------------------------------------------------------------

    def ping(self) -> None:
        """Check the registry answers /v2/ and accepts our credentials."""
        self._request("GET", "/v2/", scope=None)

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest of ``repository:reference``, or None if the registry does not have it."""
        response = self._request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                 scope=f"repository:{repository}:pull",
                                 headers={"Accept": MANIFEST_TYPES}, missing_ok=True)
        if response.status_code == 404:
            return None
        digest: str | None = response.headers.get("Docker-Content-Digest")
        if not digest:
            raise RegistryError(f"registry {self.access.host} answered a manifest HEAD for "
                                f"{repository}:{reference} without a Docker-Content-Digest")
        return digest

    def tags(self, repository: str) -> list[str]:
        """Tags of ``repository`` (at most MAX_TAGS); [] when the repository does not exist."""
        response = self._request("GET", f"/v2/{repository}/tags/list?n={MAX_TAGS}",
                                 scope=f"repository:{repository}:pull", missing_ok=True)
        if response.status_code == 404:
            return []
        return list(response.json().get("tags") or [])

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest by digest (with every tag on it); False if it was already gone."""
        response = self._request("DELETE", f"/v2/{repository}/manifests/{digest}",
                                 scope=f"repository:{repository}:delete", missing_ok=True)
        if response.status_code == 405:
            raise RegistryError(
                f"registry {self.access.host} does not allow deleting {repository}@{digest}: "
                "enable deletes (storage.delete.enabled) or remove the tag by hand")
        return response.status_code != 404

    # --- plumbing ----------------------------------------------------------------------------

    def _request(self, method: str, path: str, scope: str | None,
                 headers: dict[str, str] | None = None,
                 missing_ok: bool = False) -> httpx.Response:
        response = self._send(method, path, headers)
        if response.status_code == 401:
            self._authorization = self._answer_challenge(
                response.headers.get("WWW-Authenticate", ""), scope)
            response = self._send(method, path, headers)
        host = self.access.host
        if response.status_code in (401, 403):
            who = f"user {self.access.username!r}" if self.access.username else "anonymous access"
            raise RegistryAuthError(
                f"registry {host} refused {who} for {method} {path.split('?')[0]} "
                f"(HTTP {response.status_code}); check the ContainerRegistry block's username "
                "and password")
        if response.status_code == 404 and missing_ok:
            return response
        if response.status_code >= 500:
            raise RegistryUnreachableError(
                f"registry {host} failed {method} {path} with HTTP {response.status_code}; "
                "retry later")
        if response.status_code >= 400 and not (missing_ok and response.status_code == 405):
            raise RegistryError(f"registry {host} answered {method} {path} with HTTP "
                                f"{response.status_code}: {response.text[:200]}")
        return response

    def _send(self, method: str, path: str, headers: dict[str, str] | None) -> httpx.Response:
        sent = dict(headers or {})
        if self._authorization:
            sent["Authorization"] = self._authorization
        last_error: Exception | None = None
        for scheme in list(self._schemes):
            try:
                response = self._http.request(method, f"{scheme}://{self.access.host}{path}",
                                              headers=sent)
            except httpx.HTTPError as e:
                last_error = e
                continue
            self._schemes = [scheme]  # remember what worked
            return response
        raise RegistryUnreachableError(
            f"registry {self.access.host} did not answer ({type(last_error).__name__}: "
            f"{last_error}); check the address, that it is running, and its TLS settings"
        ) from last_error

    def _answer_challenge(self, challenge: str, scope: str | None) -> str:
        kind, _, params_text = challenge.partition(" ")
        basic = self.access.basic_auth()
        if kind.lower() == "basic":
            if basic is None:
                raise RegistryAuthError(
                    f"registry {self.access.host} requires credentials: set username and "
                    "password in the ContainerRegistry block")
            return f"Basic {basic}"
        if kind.lower() != "bearer":
            raise RegistryAuthError(f"registry {self.access.host} asks for unsupported "
                                    f"authentication {kind!r}")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        query: dict[str, Any] = {"service": params.get("service", "")}
        if scope:
            query["scope"] = scope
        token_headers = {"Authorization": f"Basic {basic}"} if basic else {}
        try:
            answer = self._http.get(params["realm"], params=query, headers=token_headers)
        except (KeyError, httpx.HTTPError) as e:
            raise RegistryUnreachableError(
                f"registry {self.access.host}: cannot get a token from its auth service "
                f"({type(e).__name__})") from e
        if answer.status_code in (401, 403):
            raise RegistryAuthError(f"registry {self.access.host}: its auth service refused "
                                    f"the credentials of user {self.access.username!r}")
        token = answer.json().get("token") or answer.json().get("access_token")
        return f"Bearer {token}"


@contextmanager
def registry_client(access: RegistryAccess) -> Iterator[RegistryClient]:
    """A client for ``access`` that is closed (and its CA file removed) afterwards."""
    client = RegistryClient(access)
    try:
        yield client
    finally:
        client.close()
