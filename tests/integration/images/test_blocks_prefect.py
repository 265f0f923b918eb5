"""image:build with its credentials in Prefect blocks (saved on the session's Prefect server):
the flow parameters name the blocks, never hold a secret."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from blocks.container_registry import ContainerRegistry
from envforge.actions.base import ActionContext
from envforge.images.actions import ImageBuild, ImageBuildInput
from envforge.services import Services
from tests.integration.images.conftest import PASSWORD, Registry

pytestmark = [pytest.mark.prefect, pytest.mark.buildah, pytest.mark.slow]


def test_action_pushes_with_a_container_registry_block(
    prefect_server: None, make_repo: Callable[..., Path], auth_registry: Registry,
    base_image: str, buildah_storage: Path, tmp_path: Path,
    services_from: Callable[[Mapping[str, str]], Services], caplog: pytest.LogCaptureFixture,
) -> None:
    services = services_from({"ENVFORGE_BUILDAH_ROOT": str(buildah_storage)})
    access = auth_registry.access
    ContainerRegistry(address=access.address, username=access.username,
                      password=access.password, tls_verify=False).save(
        "images-test-registry", overwrite=True)
    bare = make_repo({"index.html": "<p>blocks</p>\n"})
    params = ImageBuildInput(repoUrl=bare.as_uri(), ref="main", app="blocked",
                             registryBlock="images-test-registry", baseImage=base_image)
    assert PASSWORD not in params.model_dump_json()
    ctx = ActionContext(services=services, run_id="r", step_id="image", template_name="t", template_dir=tmp_path,
                        workspace=tmp_path, logger=logging.getLogger("test.images.blocks"))
    with caplog.at_level(logging.DEBUG):
        built = ImageBuild().run(ctx, params)
    assert not built.cached
    assert auth_registry.digest("blocked", built.imageTag.rsplit(":", 1)[1]) == built.digest
    assert PASSWORD not in caplog.text and PASSWORD not in built.model_dump_json()
