"""publish:github with the production defaults (api.github.com) on an httpx MockTransport:
the token goes only to the configured API origin, whatever the template writes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from envforge.actions.base import ActionContext
from envforge.actions.publish_providers import PublishGithub, PublishRepoInput
from envforge.capabilities import Capabilities, EgressPolicy, ProviderEndpoint
from envforge.errors import ActionError

TOKEN = "ghp-operator-token"


def _ctx(tmp_path: Path, seen: list[httpx.Request],
         answer: dict[tuple[str, str], tuple[int, object]]) -> ActionContext:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body = answer.get((request.method, request.url.path), (404, {}))
        return httpx.Response(status, json=body)

    egress = EgressPolicy((), resolver=lambda host, port: ["140.82.112.6"],
                          transport=httpx.MockTransport(handler))
    caps = Capabilities(egress=egress, providers={
        "github": ProviderEndpoint.configure("github", token=TOKEN)})
    (tmp_path / "ws").mkdir(exist_ok=True)
    return ActionContext(run_id="r", step_id="publish", template_name="t",
                         template_dir=tmp_path, workspace=tmp_path / "ws", capabilities=caps)


@pytest.mark.parametrize("repo_url", ["evil.example?owner=acme&repo=shop",
                                      "api.github.com.evil.example?owner=acme&repo=shop",
                                      "github.com:8443?owner=acme&repo=shop"])
def test_the_token_never_goes_to_a_host_the_template_names(tmp_path: Path,
                                                           repo_url: str) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(ActionError, match="not the configured github host"):
        PublishGithub().run(_ctx(tmp_path, seen, {}), PublishRepoInput(repoUrl=repo_url))
    assert seen == []


def test_a_clone_url_outside_the_git_base_is_refused_and_the_new_repository_deleted(
        tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    ctx = _ctx(tmp_path, seen, {
        ("GET", "/users/acme"): (200, {"login": "acme", "type": "Organization"}),
        ("POST", "/orgs/acme/repos"): (201, {
            "id": 7001, "full_name": "acme/shop",
            "clone_url": "https://evil.example/acme/shop.git",
            "html_url": "https://github.com/acme/shop"}),
        ("GET", "/repos/acme/shop"): (200, {"id": 7001, "full_name": "acme/shop"}),
        ("DELETE", "/repos/acme/shop"): (204, {}),
    })
    with pytest.raises(ActionError, match="outside the configured Git base"):
        PublishGithub().run(ctx, PublishRepoInput(
            repoUrl="github.com?owner=acme&repo=shop"))
    # GitHub deletes by name: the name is checked to still be the repository created (its id)
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/users/acme"), ("POST", "/orgs/acme/repos"), ("GET", "/repos/acme/shop"),
        ("DELETE", "/repos/acme/shop")]
    assert {r.headers["host"] for r in seen} == {"api.github.com"}
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in seen)
    assert json.loads(seen[1].content)["name"] == "shop"


def test_a_created_name_other_than_the_requested_owner_is_not_trusted(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    ctx = _ctx(tmp_path, seen, {
        ("GET", "/users/acme"): (200, {"login": "acme", "type": "Organization"}),
        ("POST", "/orgs/acme/repos"): (201, {
            "full_name": "victim/prod", "clone_url": "https://github.com/victim/prod.git",
            "html_url": "https://github.com/victim/prod"}),
    })
    with pytest.raises(ActionError, match="not under 'acme'"):
        PublishGithub().run(ctx, PublishRepoInput(repoUrl="github.com?owner=acme&repo=shop"))
    assert [r.method for r in seen] == ["GET", "POST"]  # nothing deleted


def test_rollback_never_deletes_a_repository_that_took_the_name_since(tmp_path: Path) -> None:
    """GitHub deletes by name: a repository made under the created name since (another id)
    is someone else's and is kept."""
    seen: list[httpx.Request] = []
    ctx = _ctx(tmp_path, seen, {
        ("GET", "/repos/acme/shop"): (200, {"id": 9999, "full_name": "acme/shop"}),
        ("DELETE", "/repos/acme/shop"): (204, {}),
    })
    params = PublishRepoInput(repoUrl="github.com?owner=acme&repo=shop")
    output = PublishGithub.output_model(
        remoteUrl="https://github.com/acme/shop", repoContentsUrl="x", commitHash="c",
        createdRepository="acme/shop", createdRepositoryId="7001")
    PublishGithub().rollback(ctx, params, output)
    assert [(r.method, r.url.path) for r in seen] == [("GET", "/repos/acme/shop")]
    seen.clear()
    PublishGithub().rollback(ctx, params, output.model_copy(
        update={"createdRepositoryId": "9999"}))
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/repos/acme/shop"), ("DELETE", "/repos/acme/shop")]
