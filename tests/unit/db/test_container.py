"""envforge.db.container without services: the image reference, the registry lookup (a
MockTransport standing for the registry's /v2/ API), the password."""

from __future__ import annotations

import re

import httpx
import pytest

from envforge.db.container import ImageReference, check_image, generate_password, secret_name
from envforge.errors import DatabaseError


def test_an_image_reference_splits_host_repository_and_tag() -> None:
    ref = ImageReference.parse("127.0.0.1:5000/base/postgres:15")
    assert (ref.host, ref.repository, ref.tag) == ("127.0.0.1:5000", "base/postgres", "15")
    assert ImageReference.parse("registry.test/pg").tag == "latest"
    assert ImageReference.parse("localhost/pg:1").host == "localhost"


@pytest.mark.parametrize(("image", "repository", "tag"), [
    ("postgres", "library/postgres", "latest"),
    ("postgres:16", "library/postgres", "16"),
    ("library/postgres:15", "library/postgres", "15"),  # was: host "library", repository "postgres"
    ("team/pg", "team/pg", "latest"),
])
def test_a_first_part_without_a_dot_port_or_localhost_is_docker_hubs_not_a_host(
        image: str, repository: str, tag: str) -> None:
    # the container runtime's rule: the node would pull these from Docker Hub, so the registry
    # check asks Docker Hub's API, not a host named after the image's first part
    ref = ImageReference.parse(image)
    assert (ref.host, ref.repository, ref.tag) == ("docker.io", repository, tag)
    assert ref.api_host == "registry-1.docker.io"
    assert str(ref) == f"docker.io/{repository}:{tag}"


@pytest.mark.parametrize("image", ["", "Bad/x", "a/b:", "/x", "a//b", "host:99999999/x"])
def test_a_malformed_image_is_one_line_naming_the_form(image: str) -> None:
    with pytest.raises(DatabaseError, match=r"is not \[host\[:port\]/\]repository") as e:
        ImageReference.parse(image)
    assert "\n" not in str(e.value)


def registry(status: int, seen: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status)
    return httpx.MockTransport(answer)


def test_a_present_image_is_found_with_one_manifest_head() -> None:
    seen: list[httpx.Request] = []
    ref = ImageReference.parse("127.0.0.1:5000/base/postgres:15")
    assert check_image(ref, False, registry(200, seen)) == "found"
    assert [(r.method, str(r.url)) for r in seen] == [
        ("HEAD", "http://127.0.0.1:5000/v2/base/postgres/manifests/15")]
    assert "application/vnd.oci.image.manifest.v1+json" in seen[0].headers["Accept"]


def test_a_missing_image_is_one_line_naming_it_and_the_push_command() -> None:
    ref = ImageReference.parse("127.0.0.1:5000/base/postgres:15")
    with pytest.raises(DatabaseError) as info:
        check_image(ref, False, registry(404, []))
    message = str(info.value)
    assert "\n" not in message
    assert message == ("database image 127.0.0.1:5000/base/postgres:15 is not in its registry; "
                       "push it first: bash scripts/services/images.sh push postgres "
                       "127.0.0.1:5000/base/postgres:15")


def test_a_registry_that_wants_a_login_leaves_the_image_unverified() -> None:
    ref = ImageReference.parse("127.0.0.1:5000/team/postgres:15")
    assert check_image(ref, False, registry(401, [])) == "unverified"


def test_a_registry_that_does_not_answer_is_one_line() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    ref = ImageReference.parse("127.0.0.1:9/base/postgres:15")
    with pytest.raises(DatabaseError, match=re.escape("registry 127.0.0.1:9 did not answer")) as info:
        check_image(ref, True, httpx.MockTransport(refuse))
    assert "\n" not in str(info.value) and "images.sh push postgres" in str(info.value)


def test_each_environment_gets_its_own_password() -> None:
    first, second = generate_password(), generate_password()
    assert first != second and len(first) >= 32 and first.replace("-", "").replace(
        "_", "").isalnum()
    assert secret_name("pr-1") == "pr-1-database"
