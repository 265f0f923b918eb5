"""A template's image:build reads only the repositories the operator lists
(``ENVFORGE_IMAGE_SOURCES``, by default network Git URLs): never the worker's own disk, where the
GitOps working copy and other teams' private source mirrors live, and a listed local folder
cannot be stepped out of with ``..`` or a link. Refused in one line before anything is read."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.capabilities import Capabilities, SourceScope
from envforge.errors import ConfigurationError
from envforge.images.actions import ImageBuild, ImageBuildInput
from envforge.settings import EnvforgeSettings
from tests.services_fixtures import make_services


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://github.com/acme/api.git", True),
    ("ssh://git@git.example.com/acme/api.git", True),
    ("git@github.com:acme/api.git", True),
    ("file:///root/.envforge/cache/sources/mirrors/secret-app-0123abcd.git", False),
    ("/root/.envforge/cache/git/0123/", False),
    ("../../.envforge/cache/sources", False),
    ("http://git.example.com/acme/api.git", False),
])
def test_the_default_is_network_repositories_only(url: str, allowed: bool) -> None:
    assert SourceScope().allows(url) is allowed


def test_a_listed_folder_cannot_be_stepped_out_of(tmp_path: Path) -> None:
    apps, other = tmp_path / "apps", tmp_path / "cache"
    (apps / "shop.git").mkdir(parents=True)
    (other / "mirror.git").mkdir(parents=True)
    (apps / "link.git").symlink_to(other / "mirror.git")
    scope = SourceScope((f"file://{apps}/",))
    assert scope.allows((apps / "shop.git").as_uri())
    assert scope.allows(str(apps / "shop.git"))
    assert not scope.allows(f"file://{apps}/../cache/mirror.git")
    assert not scope.allows((apps / "link.git").as_uri())  # a link out of the folder
    assert not scope.allows(f"file://{tmp_path}/apps-evil/x.git")  # a sibling sharing the prefix
    assert not scope.allows("https://github.com/acme/api.git")  # not listed here


def test_image_build_refuses_the_workers_disk_before_reading_anything(tmp_path: Path) -> None:
    services = make_services({"ENVFORGE_HOME": str(tmp_path / "home")})  # the defaults
    ctx = ActionContext(services=services, run_id="r", step_id="image", template_name="t",
                        template_dir=tmp_path, workspace=tmp_path,
                        capabilities=services.capabilities,
                        logger=logging.getLogger("test.images.sources"))
    mirror = tmp_path / "home" / "cache" / "sources" / "mirrors" / "private-0123.git"
    mirror.mkdir(parents=True)
    with pytest.raises(ConfigurationError, match=r"step 'image' \(image:build\): repository "
                       r"'file://.*private-0123\.git' is not a source image builds may read "
                       r"\(ENVFORGE_IMAGE_SOURCES: https:// ssh:// git@\)") as caught:
        ImageBuild().run(ctx, ImageBuildInput(repoUrl=mirror.as_uri(), ref="main", app="x",
                                              registry="127.0.0.1:9", tlsVerify=False))
    assert "\n" not in str(caught.value)


def test_the_setting_reaches_the_capability() -> None:
    settings = EnvforgeSettings.from_environ(
        {"ENVFORGE_IMAGE_SOURCES": "https://git.corp.example/, file:///srv/repos/"})
    assert Capabilities.from_settings(settings).image_sources.prefixes == (
        "https://git.corp.example/", "file:///srv/repos/")
