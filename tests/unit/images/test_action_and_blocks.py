"""image:build's input model and static checks, and the registry/Git blocks (no services)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from blocks.container_registry import ContainerRegistry
from blocks.git import GitCredentials
from envforge.actions.base import ActionContext
from envforge.actions.registry import default_registry
from envforge.errors import ConfigurationError
from envforge.images.actions import ImageBuild, ImageBuildInput
from envforge.images.build import default_app_name, resolve_registry
from envforge.images.git_auth import GitAuth
from envforge.services import Services
from tests.services_fixtures import make_services


def test_registered_and_documented() -> None:
    action = default_registry().get("image:build")
    assert isinstance(action, ImageBuild)
    assert action.examples and action.examples[0]["action"] == "image:build"


def test_input_defaults_and_validation() -> None:
    params = ImageBuildInput(repoUrl="https://git.example.com/a/web.git")
    assert (params.ref, params.context, params.tlsVerify) == ("main", ".", True)
    with pytest.raises(ValidationError, match="app"):
        ImageBuildInput(repoUrl="x", app="Not Valid")
    with pytest.raises(ValidationError, match="unknownField"):
        ImageBuildInput.model_validate({"repoUrl": "x", "unknownField": 1})


def test_check_reports_static_problems(tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVFORGE_REGISTRY", raising=False)
    problems = ImageBuild().check(
        ImageBuildInput(repoUrl="x", stack="cobol", context="../up"), tmp_path)
    assert any("unknown stack 'cobol'" in p for p in problems)
    assert any(p.startswith("context:") for p in problems)
    assert any("ENVFORGE_REGISTRY" in p for p in problems)
    fine = ImageBuildInput(repoUrl="x", stack="node", registry="127.0.0.1:5000")
    assert ImageBuild().check(fine, tmp_path) == []


def test_registry_resolution(services_from: Callable[[Mapping[str, str]], Services]) -> None:
    with pytest.raises(ConfigurationError, match="no registry to push to"):
        resolve_registry(None, None, services=services_from({}))
    services = services_from({"ENVFORGE_REGISTRY": "127.0.0.1:5000"})
    access = resolve_registry(None, None, tls_verify=False, services=services)
    assert access.address == "127.0.0.1:5000" and access.tls_verify is False


def test_default_app_name() -> None:
    assert default_app_name("https://git.example.com/acme/My_Web.git") == "my-web"
    assert default_app_name("git@github.com:acme/api.git") == "api"
    assert default_app_name("file:///tmp/x/") == "x"


def test_blocks_keep_secrets_secret() -> None:
    block = ContainerRegistry(address="reg.example.com/team", username="ci",
                              password=SecretStr("pw-123"), tls_verify=False)
    access = block.access()
    assert access.image("web") == "reg.example.com/team/web" and access.tls_verify is False
    assert "pw-123" not in repr(block) and "pw-123" not in repr(access)
    creds = GitCredentials(token=SecretStr("tok-456"))
    with creds.get_client() as env:
        assert "GIT_ASKPASS" in env and all("tok-456" not in v for v in env.values())
    assert "tok-456" not in repr(creds)


class _Blocks:
    """The one connection image:build asks for here: a GitCredentials block by name."""

    def __init__(self, auth: GitAuth) -> None:
        self.auth, self.asked = auth, []  # type: list[str]

    def git_auth(self, name: str) -> GitAuth:
        self.asked.append(name)
        return self.auth


def test_image_build_sends_a_named_block_only_to_its_hosts(tmp_path: Path) -> None:
    """A template names the operator's GitCredentials block and a repository on its own host:
    refused before anything is cloned, in one line naming the block and its hosts."""
    blocks = _Blocks(GitAuth(token=SecretStr("ghp_operator0123456789abcdef"),
                             hosts=("github.com",), identity="github-creds"))
    services = make_services(connections=blocks)  # type: ignore[arg-type]
    ctx = ActionContext(services=services, run_id="r", step_id="image", template_name="t",
                        template_dir=tmp_path, workspace=tmp_path,
                        logger=logging.getLogger("test.images.hosts"))
    params = ImageBuildInput(repoUrl="https://attacker.example/x.git", ref="main", app="x",
                             registry="127.0.0.1:9", tlsVerify=False,
                             gitCredentialsBlock="github-creds")
    with pytest.raises(ConfigurationError, match=r"step 'image' \(image:build\): GitCredentials "
                       r"block 'github-creds' is for github\.com, not attacker\.example") as e:
        ImageBuild().run(ctx, params)
    # refused before any clone (attacker.example does not resolve: a clone would say so)
    assert blocks.asked == ["github-creds"] and "ghp_" not in str(e.value)
