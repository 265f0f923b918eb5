"""Talking to a container registry over its HTTP API (/v2/): manifests, tags, blob mounts,
deletes.

This is the one place registry HTTP errors become envforge errors. Every request goes through
the egress capability (envforge.capabilities.egress), scoped to the registry's configured
origin. Authentication follows the registry's ``WWW-Authenticate`` challenge: Basic (htpasswd
registries) or a Bearer token fetched from the realm it names (GHCR and Harbor: the registry
itself; Docker Hub: the block's ``auth_url``), a realm anywhere else refused before the
password is sent. Credentials live in :class:`RegistryAccess` as ``SecretStr`` and never
appear in a message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
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

from envforge.capabilities.egress import (
    AllowRule,
    Answer,
    EgressClient,
    EgressPolicy,
    Resolver,
    TransferBudget,
    parse_url,
    system_resolver,
)
from envforge.errors import (
    BudgetExceededError,
    ConfigurationError,
    EgressFailedError,
    EgressRefusedError,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachableError,
)

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
MAX_TAGS = 1000
#: what one registry API answer may use (manifests and tag lists are small)
REGISTRY_BUDGET = TransferBudget(max_bytes=16 * 1024 * 1024, deadline_seconds=30.0,
                                 max_redirects=3)


@dataclass(frozen=True)
class Manifest:
    """An image manifest as the registry stores it: the exact bytes (its digest is theirs)."""

    body: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class RegistryAccess:
    """Where a registry is and how to log in: ``address`` is ``host[:port][/namespace]``."""

    address: str
    username: str | None = None
    password: SecretStr | None = None
    tls_verify: bool = True
    ca_cert: str | None = None  # PEM text of an extra CA to trust
    #: the token service's base URL when it is not the registry itself (Docker Hub's
    #: https://auth.docker.io); the only other place the password may go
    auth_url: str | None = None

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
    """A small synchronous client for the parts of the registry API envforge needs.

    Every request goes through the egress capability, scoped to the registry's own origin
    (the block's address: configured by the operator, so a private address is allowed) and
    the token service's origin when the block names one (``auth_url``): a realm the registry
    names elsewhere is refused, so the block's password never goes to a host the registry
    chose. Byte and time budgets bound every answer; credentials never follow a redirect."""

    def __init__(self, access: RegistryAccess, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None,
                 resolver: Resolver | None = None) -> None:
        self.access = access
        self._ca_file: Path | None = None
        verify: ssl.SSLContext | bool = access.tls_verify
        if access.tls_verify and access.ca_cert:
            with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
                f.write(access.ca_cert)
            self._ca_file = Path(f.name)
            verify = ssl.create_default_context(cafile=str(self._ca_file))
        explicit = access.address.split("://", 1)[0] if "://" in access.address else None
        self._schemes = [explicit] if explicit else (
            ["https"] if access.tls_verify else ["https", "http"])
        rules = []
        try:
            for scheme in self._schemes:
                rules.append(AllowRule(parse_url(f"{scheme}://{access.host}").origin, (), True))
            if access.auth_url:
                auth = parse_url(access.auth_url.rstrip("/"))
                rules.append(AllowRule(auth.origin, tuple(p for p in auth.segments if p), True))
        except EgressRefusedError as e:
            raise ConfigurationError(f"ContainerRegistry address/auth_url: {e}") from None
        policy = EgressPolicy(tuple(rules), REGISTRY_BUDGET, resolver or system_resolver,
                              transport or httpx.HTTPTransport(verify=verify))
        budget = TransferBudget(REGISTRY_BUDGET.max_bytes, max(timeout, 1.0) * 3,
                                REGISTRY_BUDGET.max_redirects)
        self._http: EgressClient = policy.client((), budget)
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
        if response.status == 404:
            return None
        digest = _header(response, "Docker-Content-Digest")
        if not digest:
            raise RegistryError(f"registry {self.access.host} answered a manifest HEAD for "
                                f"{repository}:{reference} without a Docker-Content-Digest")
        return digest

    def tags(self, repository: str) -> list[str]:
        """Tags of ``repository`` (at most MAX_TAGS); [] when the repository does not exist."""
        response = self._request("GET", f"/v2/{repository}/tags/list?n={MAX_TAGS}",
                                 scope=f"repository:{repository}:pull", missing_ok=True)
        if response.status == 404:
            return []
        return list(response.json().get("tags") or [])

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest of ``repository:reference`` as stored (its bytes, media type and
        digest), or None if the registry does not have it."""
        response = self._request("GET", f"/v2/{repository}/manifests/{reference}",
                                 scope=f"repository:{repository}:pull",
                                 headers={"Accept": MANIFEST_TYPES}, missing_ok=True)
        if response.status == 404:
            return None
        media_type = (_header(response, "Content-Type") or "").split(";")[0].strip()
        digest = _header(response, "Docker-Content-Digest") or (
            "sha256:" + hashlib.sha256(response.body).hexdigest())
        return Manifest(body=response.body, media_type=media_type, digest=digest)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Link the blob ``digest`` of ``from_repository`` into ``repository`` without copying
        it (the registry API's cross-repository mount). False when the registry would not
        mount it (it then opened an upload instead, which is cancelled here)."""
        response = self._request(
            "POST", f"/v2/{repository}/blobs/uploads/?mount={digest}&from={from_repository}",
            scope=f"repository:{repository}:pull,push")
        if response.status == 201:
            return True
        location = _header(response, "Location")
        if response.status == 202 and location:
            # an absolute Location is on this registry: keep its path only
            path = "/" + location.split("://", 1)[1].split("/", 1)[1] if "://" in location \
                else location
            # best effort: the registry expires an abandoned upload by itself
            with contextlib.suppress(RegistryError):
                self._request("DELETE", path, scope=f"repository:{repository}:pull,push",
                              missing_ok=True)
        return False

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """Store ``manifest`` as ``repository:reference``; the digest the registry gives it."""
        response = self._request("PUT", f"/v2/{repository}/manifests/{reference}",
                                 scope=f"repository:{repository}:pull,push",
                                 headers={"Content-Type": manifest.media_type},
                                 content=manifest.body)
        return _header(response, "Docker-Content-Digest") or manifest.digest

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest by digest (with every tag on it); False if it was already gone."""
        response = self._request("DELETE", f"/v2/{repository}/manifests/{digest}",
                                 scope=f"repository:{repository}:delete", missing_ok=True)
        if response.status == 405:
            raise RegistryError(
                f"registry {self.access.host} does not allow deleting {repository}@{digest}: "
                "enable deletes (storage.delete.enabled) or remove the tag by hand")
        return response.status != 404

    # --- plumbing ----------------------------------------------------------------------------

    def _request(self, method: str, path: str, scope: str | None,
                 headers: dict[str, str] | None = None,
                 missing_ok: bool = False, content: bytes | None = None) -> Answer:
        response = self._send(method, path, headers, content)
        if response.status == 401:
            self._authorization = self._answer_challenge(
                _header(response, "WWW-Authenticate") or "", scope)
            response = self._send(method, path, headers, content)
        host = self.access.host
        if response.status in (401, 403):
            who = f"user {self.access.username!r}" if self.access.username else "anonymous access"
            raise RegistryAuthError(
                f"registry {host} refused {who} for {method} {path.split('?')[0]} "
                f"(HTTP {response.status}); check the ContainerRegistry block's username "
                "and password")
        if response.status == 404 and missing_ok:
            return response
        if response.status >= 500:
            raise RegistryUnreachableError(
                f"registry {host} failed {method} {path} with HTTP {response.status}; "
                "retry later")
        if response.status >= 400 and not (missing_ok and response.status == 405):
            raise RegistryError(f"registry {host} answered {method} {path} with HTTP "
                                f"{response.status}: {response.text(200)}")
        return response

    def _send(self, method: str, path: str, headers: dict[str, str] | None,
              content: bytes | None = None) -> Answer:
        sent = dict(headers or {})
        if self._authorization:
            sent["Authorization"] = self._authorization
        last_error: Exception | None = None
        for scheme in list(self._schemes):
            try:
                answer = self._http.request(method, f"{scheme}://{self.access.host}{path}",
                                            headers=sent, content=content)
            except EgressFailedError as e:
                last_error = e
                continue
            except (EgressRefusedError, BudgetExceededError) as e:
                raise RegistryError(f"registry {self.access.host}: {e}") from None
            self._schemes = [scheme]  # remember what worked
            return answer
        raise RegistryUnreachableError(
            f"registry {self.access.host} did not answer ({last_error}); check the address, "
            "that it is running, and its TLS settings") from last_error

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
        realm = params.get("realm", "")
        try:
            url = str(httpx.URL(realm).copy_merge_params(query))
        except (httpx.InvalidURL, ValueError, TypeError):
            raise RegistryAuthError(f"registry {self.access.host} names a token service "
                                    f"{realm[:100]!r} that is not a URL") from None
        try:
            # the policy allows the registry's origin and the block's auth_url only
            self._http.policy.check(url)
        except EgressRefusedError:
            raise RegistryAuthError(
                f"registry {self.access.host} sends its logins to {realm[:100]!r}, which is "
                "not this registry: set the ContainerRegistry block's auth_url to that token "
                "service if you trust it (the password is not sent there until then)") from None
        try:
            answer = self._http.request("GET", url, headers=token_headers)
        except (EgressFailedError, BudgetExceededError) as e:
            raise RegistryUnreachableError(
                f"registry {self.access.host}: cannot get a token from its auth service "
                f"({e})") from e
        except EgressRefusedError as e:
            raise RegistryAuthError(f"registry {self.access.host}: {e}") from None
        if answer.status in (401, 403):
            raise RegistryAuthError(f"registry {self.access.host}: its auth service refused "
                                    f"the credentials of user {self.access.username!r}")
        try:
            data = answer.json()
        except ValueError:
            data = {}
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not token:
            raise RegistryAuthError(f"registry {self.access.host}: its auth service answered "
                                    "no token")
        return f"Bearer {token}"


def _header(answer: Answer, name: str) -> str | None:
    """A header of ``answer``, whatever case the registry wrote it in."""
    wanted = name.lower()
    return next((v for k, v in answer.headers.items() if k.lower() == wanted), None)


@contextmanager
def registry_client(access: RegistryAccess) -> Iterator[RegistryClient]:
    """A client for ``access`` that is closed (and its CA file removed) afterwards."""
    client = RegistryClient(access)
    try:
        yield client
    finally:
        client.close()
