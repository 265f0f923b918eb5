"""An image a create or an update pushed before it was killed is recorded before the push and
deleted by the next create, change or destroy, with image:build's own rollback rules (only the
tag the run pushed, only while it still points at the recorded digest). Real buildah and
registry."""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.environments.change_intents import begin_change, end_change
from envforge.environments.intents import abandon_create, begin_create, recover_killed_create
from envforge.images.actions import ImageBuild, ImageBuildInput
from envforge.templating.loader import load_template
from tests.integration.images.conftest import Registry
from tests.integration.images.test_action_and_cli import buildah_env  # noqa: F401
from tests.services_fixtures import make_services

pytestmark = [pytest.mark.buildah, pytest.mark.slow]


def test_a_killed_creates_pushed_image_is_deleted_by_the_next_create(
    make_repo: Callable[..., Path], registry: Registry, base_image: str,
    buildah_env: None, tmp_path: Path,  # noqa: F811
) -> None:
    name = f"img-{uuid.uuid4().hex[:8]}"
    app = f"killed-{uuid.uuid4().hex[:6]}"
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "template.yaml").write_text(
        "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\n"
        "metadata: {name: killed-image}\nspec:\n  type: service\n  steps:\n"
        "    - {id: image, action: image:build, input: {repoUrl: x, ref: main}}\n")
    services = make_services()
    intent = begin_create(services, name, load_template(tmp_path / "tpl"),
                          uuid.uuid4().hex[:12], name)
    bare = make_repo({"index.html": f"<p>{app}</p>\n"})
    ctx = ActionContext(services=services, run_id=intent.runId, step_id="image",
                        template_name="killed-image", template_dir=tmp_path,
                        workspace=tmp_path, environment={"name": name, "namespace": name},
                        logger=logging.getLogger("test.images.killed"))
    built = ImageBuild().run(ctx, ImageBuildInput(
        repoUrl=bare.as_uri(), ref="main", app=app, registry=registry.access.address,
        tlsVerify=False, baseImage=base_image))
    tag = built.imageTag.rsplit(":", 1)[1]
    assert not built.cached and registry.digest(app, tag) == built.digest
    abandon_create(services, intent)  # killed before its commit: nothing rolled back

    cleaned = recover_killed_create(services, name, committed=False)
    assert cleaned is not None and cleaned.problems == []
    assert cleaned.images == [built.imageTag]
    assert registry.digest(app, tag) is None


def test_a_killed_updates_pushed_image_is_deleted_by_the_next_change_and_the_live_one_kept(
    make_repo: Callable[..., Path], registry: Registry, base_image: str,
    buildah_env: None, tmp_path: Path,  # noqa: F811
) -> None:
    """An update builds the environment's new commit: that tag was not in the registry, so
    it is recorded and, the update killed, deleted before the next change. The image the
    environment runs (in the registry before the update) is never recorded, never deleted."""
    name = f"img-{uuid.uuid4().hex[:8]}"
    app = f"upd-{uuid.uuid4().hex[:6]}"
    services = make_services()
    bare = make_repo({"index.html": f"<p>{app} v1</p>\n"})
    live_ctx = ActionContext(services=services, run_id="create-run", step_id="image",
                             template_name="t", template_dir=tmp_path, workspace=tmp_path,
                             environment={"name": name, "namespace": name},
                             logger=logging.getLogger("test.images.killed"))
    given = {"repoUrl": bare.as_uri(), "app": app, "registry": registry.access.address,
             "tlsVerify": False, "baseImage": base_image}
    live = ImageBuild().run(live_ctx, ImageBuildInput(ref="main", **given))
    # the pull request gets a new commit on another branch; the update builds it
    clone = tmp_path / "work"
    git_run = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True)
    (clone / "index.html").write_text(f"<p>{app} v2</p>\n")
    subprocess.run([*git_run, "-C", str(clone), "commit", "-qam", "v2"], check=True)
    subprocess.run(["git", "-C", str(clone), "push", "-q", "origin", "HEAD:refs/heads/v2"],
                   check=True)

    intent, _ = begin_change(services, name, "update", uuid.uuid4().hex[:12])
    ctx = ActionContext(services=services, run_id=intent.runId, step_id="image",
                        template_name="t", template_dir=tmp_path, workspace=tmp_path,
                        environment={"name": name, "namespace": name},
                        logger=logging.getLogger("test.images.killed"))
    again = ImageBuild().run(ctx, ImageBuildInput(ref="main", **given))  # the live one
    new = ImageBuild().run(ctx, ImageBuildInput(ref="v2", **given))
    assert again.cached and not new.cached and new.imageTag != live.imageTag
    end_change(services, intent, clean=False)  # killed before its commit: nothing undone

    _, cleaned = begin_change(services, name, "update", uuid.uuid4().hex[:12])
    assert cleaned is not None and cleaned.images == [new.imageTag]
    assert registry.digest(app, new.imageTag.rsplit(":", 1)[1]) is None
    assert registry.digest(app, live.imageTag.rsplit(":", 1)[1]) == live.digest
