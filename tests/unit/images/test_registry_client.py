"""The registry API client and the cache key, against httpx.MockTransport (no services)."""

from __future__ import annotations

import base64

import httpx
import pytest
from pydantic import SecretStr

from envforge.errors import (
    RegistryAuthError,
    RegistryError,
    RegistryUnreachableError,
    TemporaryError,
)
from envforge.images import cache
from envforge.images.registry_client import RegistryAccess, RegistryClient

DIGEST = "sha256:" + "ab" * 32


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def fake_registry(auth: str | None = None, bearer: bool = False) -> httpx.MockTransport:
    """Holds app:v1 (and app:other on the same digest); optional Basic or Bearer login."""
    tags = {"v1": DIGEST, "other": DIGEST, "solo": "sha256:" + "cd" * 32}

    def handler(request: httpx.Request) -> httpx.Response:
        # egress connects to the checked address and names the host in the Host header
        if request.headers["host"] == "auth.example":
            if request.headers.get("Authorization") != auth:
                return httpx.Response(401)
            assert request.url.params["scope"].startswith("repository:app:")
            return httpx.Response(200, json={"token": "tok"})
        if auth is not None:
            expected = "Bearer tok" if bearer else auth
            if request.headers.get("Authorization") != expected:
                challenge = ('Bearer realm="https://auth.example/token",service="reg"'
                             if bearer else 'Basic realm="reg"')
                return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        if path == "/v2/app/tags/list":
            return httpx.Response(200, json={"name": "app", "tags": sorted(tags)})
        if path.startswith("/v2/app/manifests/"):
            ref = path.rsplit("/", 1)[1]
            if request.method == "DELETE":
                found = [t for t, d in tags.items() if d == ref]
                for t in found:
                    del tags[t]
                return httpx.Response(202 if found else 404)
            if ref in tags:
                return httpx.Response(200, headers={"Docker-Content-Digest": tags[ref]})
        return httpx.Response(404)

    return httpx.MockTransport(handler)


def _public(host: str, port: int) -> list[str]:
    return ["203.0.113.5"]


def _client(transport: httpx.MockTransport, user: str | None = None,
            password: str | None = None, auth_url: str | None = "https://auth.example"
            ) -> RegistryClient:
    access = RegistryAccess("reg.example:5000", username=user,
                            password=SecretStr(password) if password else None,
                            auth_url=auth_url)
    return RegistryClient(access, transport=transport, resolver=_public)


def test_manifest_digest_tags_and_delete() -> None:
    with _client(fake_registry()) as client:
        client.ping()
        assert client.manifest_digest("app", "v1") == DIGEST
        assert client.manifest_digest("app", "v2") is None
        assert cache.tags_sharing_digest(client, "app", DIGEST, "v1") == ["other"]
        assert cache.tags_sharing_digest(client, "app", "sha256:" + "cd" * 32, "solo") == []
        assert client.delete_manifest("app", DIGEST) is True
        assert client.delete_manifest("app", DIGEST) is False
        assert client.tags("app") == ["solo"]


def test_basic_auth_challenge_is_answered() -> None:
    transport = fake_registry(auth=_basic("bob", "pw"))
    with _client(transport, "bob", "pw") as client:
        assert client.manifest_digest("app", "v1") == DIGEST
    with _client(transport, "bob", "wrong") as client, \
            pytest.raises(RegistryAuthError, match="refused user 'bob'") as caught:
        client.manifest_digest("app", "v1")
    assert "wrong" not in str(caught.value)
    with _client(transport) as client, pytest.raises(RegistryAuthError, match="requires"):
        client.ping()


def test_bearer_token_flow() -> None:
    transport = fake_registry(auth=_basic("bob", "pw"), bearer=True)
    with _client(transport, "bob", "pw") as client:
        assert client.manifest_digest("app", "v1") == DIGEST
    with _client(transport, "bob", "nope") as client, \
            pytest.raises(RegistryAuthError, match="auth service refused"):
        client.manifest_digest("app", "v1")


def test_a_realm_the_block_does_not_name_never_gets_the_password() -> None:
    seen: list[httpx.Request] = []
    inner = fake_registry(auth=_basic("bob", "pw"), bearer=True)

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return inner.handle_request(request)

    with _client(httpx.MockTransport(record), "bob", "pw", auth_url=None) as client, \
            pytest.raises(RegistryAuthError, match="auth_url") as caught:
        client.manifest_digest("app", "v1")
    assert [r.headers["host"] for r in seen] == ["reg.example:5000"]
    assert "Authorization" not in seen[0].headers and "pw" not in str(caught.value)


def test_a_redirect_elsewhere_is_refused_and_a_huge_answer_hits_the_budget() -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        if request.headers["host"] == "reg.example:5000":
            return httpx.Response(307, headers={"Location": "https://elsewhere.example/v2/"})
        raise AssertionError("the redirect was followed")

    with _client(httpx.MockTransport(redirect)) as client, \
            pytest.raises(RegistryError, match="is not allowed"):
        client.ping()

    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * (17 * 1024 * 1024))

    with _client(httpx.MockTransport(huge)) as client, \
            pytest.raises(RegistryError, match="byte budget") as caught:
        client.tags("app")
    assert not isinstance(caught.value, TemporaryError)  # a huge answer is not retried


def test_unreachable_and_server_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with _client(httpx.MockTransport(refuse)) as client, \
            pytest.raises(RegistryUnreachableError, match=r"reg\.example:5000 did not answer"):
        client.ping()
    with _client(httpx.MockTransport(lambda r: httpx.Response(503))) as client, \
            pytest.raises(RegistryUnreachableError, match="HTTP 503"):
        client.ping()
    with _client(httpx.MockTransport(lambda r: httpx.Response(405))) as client, \
            pytest.raises(RegistryError, match=r"storage\.delete"):
        client.delete_manifest("app", DIGEST)


def test_plain_http_fallback_only_without_tls_verification() -> None:
    schemes: list[str] = []

    def http_only(request: httpx.Request) -> httpx.Response:
        schemes.append(request.url.scheme)
        if request.url.scheme == "https":
            raise httpx.ConnectError("wrong version number", request=request)
        return httpx.Response(200, json={})

    insecure = RegistryAccess("127.0.0.1:5000", tls_verify=False)
    with RegistryClient(insecure, transport=httpx.MockTransport(http_only)) as client:
        client.ping()
        client.ping()
    assert schemes == ["https", "http", "http"]  # the working scheme is remembered
    with RegistryClient(RegistryAccess("127.0.0.1:5000"),
                        transport=httpx.MockTransport(http_only)) as client, \
            pytest.raises(RegistryUnreachableError):
        client.ping()


def test_access_names_and_repositories() -> None:
    access = RegistryAccess("registry.example.com/team/sub", username="u",
                            password=SecretStr("p"))
    assert access.host == "registry.example.com"
    assert access.image("web") == "registry.example.com/team/sub/web"
    assert "p'" not in repr(access) and "**" in repr(access)
    assert RegistryAccess("http://127.0.0.1:5000").image("web") == "127.0.0.1:5000/web"


def test_content_key_and_tag() -> None:
    key = cache.content_key("FROM a\n", {"B": "2", "A": "1"})
    assert key == cache.content_key("FROM a\n", {"A": "1", "B": "2"})  # order-free
    assert key != cache.content_key("FROM a\n", {"A": "1", "B": "3"})
    assert key != cache.content_key("FROM b\n", {"A": "1", "B": "2"})
    assert key != cache.content_key("FROM a\n", {"A": "1", "B": "2"}, context="web")
    tag = cache.image_tag("0123456789abcdef" * 2 + "01234567", key)
    assert tag == f"0123456789ab-{key[:8]}"


def _copying_registry(media_type: str, mount_ok: bool, seen: list[str]) -> httpx.MockTransport:
    """src:t holds a manifest of ``media_type``; mounts into dst succeed or open an upload."""
    body = (b'{"schemaVersion":2,"config":{"digest":"sha256:c1"},'
            b'"layers":[{"digest":"sha256:l1"},{"digest":"sha256:l2"}]}')
    stored: dict[str, tuple[bytes, str]] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}?{request.url.query.decode()}"
                    .rstrip("?"))
        path = request.url.path
        if path == "/v2/src/manifests/t" and request.method == "GET":
            return httpx.Response(200, content=body, headers={
                "Content-Type": media_type, "Docker-Content-Digest": DIGEST})
        if path == "/v2/dst/blobs/uploads/" and request.method == "POST":
            if mount_ok:
                return httpx.Response(201)
            return httpx.Response(202, headers={
                "Location": "http://reg.example:5000/v2/dst/blobs/uploads/u1?_state=x"})
        if path == "/v2/dst/blobs/uploads/u1" and request.method == "DELETE":
            return httpx.Response(204)
        if path == "/v2/dst/manifests/t" and request.method == "PUT":
            stored["t"] = (request.content, request.headers["Content-Type"])
            return httpx.Response(201, headers={"Docker-Content-Digest": DIGEST})
        return httpx.Response(404)

    transport = httpx.MockTransport(handler)
    transport.stored = stored  # type: ignore[attr-defined]
    return transport


def test_copy_tag_mounts_every_blob_then_puts_the_same_manifest() -> None:
    seen: list[str] = []
    transport = _copying_registry("application/vnd.oci.image.manifest.v1+json", True, seen)
    with _client(transport) as client:
        assert cache.copy_tag(client, "src", "dst", "t") == DIGEST
        assert cache.copy_tag(client, "src", "dst", "missing") is None
    mounts = [s for s in seen if s.startswith("POST")]
    assert mounts == [f"POST /v2/dst/blobs/uploads/?mount=sha256:{b}&from=src"
                      for b in ("c1", "l1", "l2")]
    body, media_type = transport.stored["t"]  # type: ignore[attr-defined]
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    assert body.startswith(b'{"schemaVersion":2') and b'"sha256:l2"' in body  # byte for byte


def test_copy_tag_gives_up_when_the_registry_will_not_mount_or_it_is_an_index() -> None:
    seen: list[str] = []
    refusing = _copying_registry("application/vnd.oci.image.manifest.v1+json", False, seen)
    with _client(refusing) as client:
        assert cache.copy_tag(client, "src", "dst", "t") is None
    assert "DELETE /v2/dst/blobs/uploads/u1?_state=x" in seen  # the opened upload cancelled
    assert not any(s.startswith("PUT") for s in seen)

    seen.clear()
    index = _copying_registry("application/vnd.oci.image.index.v1+json", True, seen)
    with _client(index) as client:
        assert cache.copy_tag(client, "src", "dst", "t") is None
        assert cache.reuse_shared(client, "src", "src", "t") is None  # never onto itself
    assert not any(s.startswith(("POST", "PUT")) for s in seen)
