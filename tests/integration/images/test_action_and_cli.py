"""The image:build action (run, rollback) and `envforge image build` against real services."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.actions.registry import default_registry
from envforge.cli import main
from envforge.images.actions import ImageBuild, ImageBuildInput
from envforge.images.builders import BuildahBuilder
from tests.integration.images.conftest import Registry
from tests.services_fixtures import make_services

pytestmark = [pytest.mark.buildah, pytest.mark.slow]


@pytest.fixture
def buildah_env(builder: BuildahBuilder, buildah_storage: Path,
                monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the action's default builder at the session's buildah storage."""
    monkeypatch.setenv("ENVFORGE_BUILDAH_ROOT", str(buildah_storage))


def _ctx(tmp_path: Path) -> ActionContext:
    return ActionContext(services=make_services(), run_id="run-1", step_id="image", template_name="preview",
                         template_dir=tmp_path, workspace=tmp_path,
                         logger=logging.getLogger("test.images.action"))


def test_action_builds_cli_reuses_and_rollback_deletes_only_its_own_tag(
    make_repo: Callable[..., Path], registry: Registry, base_image: str, buildah_env: None,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert isinstance(default_registry().get("image:build"), ImageBuild)
    bare = make_repo({"index.html": "<p>hello</p>\n"})
    action = ImageBuild()
    params = ImageBuildInput(repoUrl=bare.as_uri(), ref="main", app="demo",
                             registry=registry.access.address, tlsVerify=False,
                             baseImage=base_image)
    built = action.run(_ctx(tmp_path), params)
    assert not built.cached and built.image.endswith(built.digest)
    tag = built.imageTag.rsplit(":", 1)[1]

    code = main(["image", "build", str(bare), "--ref", "main", "--app", "demo",
                 "--registry", registry.access.address, "--insecure",
                 "--base-image", base_image, "--output", "json"])
    assert code == 0
    from_cli = json.loads(capsys.readouterr().out)
    assert from_cli["cached"] is True and from_cli["digest"] == built.digest

    cached = action.run(_ctx(tmp_path), params)
    assert cached.cached
    action.rollback(_ctx(tmp_path), params, cached)  # not made by that run: kept
    assert registry.digest("demo", tag) == built.digest

    action.rollback(_ctx(tmp_path), params, built)  # made by that run: deleted
    assert registry.digest("demo", tag) is None


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_rollback_keeps_an_image_another_tag_shares(
    make_repo: Callable[..., Path], registry: Registry, base_image: str, buildah_env: None,
    tmp_path: Path,
) -> None:
    bare = make_repo({"index.html": "<p>shared</p>\n"})
    action = ImageBuild()
    params = ImageBuildInput(repoUrl=bare.as_uri(), ref="main", app="shared",
                             registry=registry.access.address, tlsVerify=False,
                             baseImage=base_image)
    built = action.run(_ctx(tmp_path), params)
    host = registry.access.host
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{built.imageTag}", f"docker://{host}/shared:release"],
                   check=True, capture_output=True)
    action.rollback(_ctx(tmp_path), params, built)
    assert registry.digest("shared", built.imageTag.rsplit(":", 1)[1]) == built.digest
    assert registry.digest("shared", "release") == built.digest
