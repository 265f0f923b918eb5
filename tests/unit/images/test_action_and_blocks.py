"""image:build's input model and static checks, and the registry/Git blocks (no services)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from blocks.container_registry import ContainerRegistry
from blocks.git import GitCredentials
from envforge.actions.registry import default_registry
from envforge.errors import ConfigurationError
from envforge.images.actions import ImageBuild, ImageBuildInput
from envforge.images.build import default_app_name, resolve_registry
from envforge.services import Services


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
