"""`envforge env upgrade --set ref=...` of an environment with an image: the image whose build
inputs changed is built again (that step only: the Variables step stays carried forward), a
dry run says so and builds nothing, and an upgrade that fails after the build leaves no image of
its own in the registry. A real docker-registry, buildah, bare Git remotes; vault:secrets with
plain variables only, so no Vault is read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from envforge.cli import main
from envforge.images.builders import BuildahBuilder
from tests.helpers import commit_count
from tests.integration.images.conftest import (  # noqa: F401  (the session's services)
    Registry,
    base_image,
    buildah_storage,
    builder,
    commit_to,
    make_repo,
    registry,
)
from tests.lifecycle_setup import deployment, embedded_remote, manifest_files, show, use_templates

pytestmark = [pytest.mark.buildah, pytest.mark.slow]

TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: rebuilt, version: "1.0.0"}
spec:
  owner: group:platform
  type: service
  parameters:
    properties:
      name: {type: string}
      repoUrl: {type: string}
      ref: {type: string, default: main}
      registry: {type: string}
      baseImage: {type: string}
  steps:
    - id: image
      action: image:build
      input:
        repoUrl: ${{ parameters.repoUrl }}
        ref: ${{ parameters.ref }}
        app: web
        registry: ${{ parameters.registry }}
        tlsVerify: false
        baseImage: ${{ parameters.baseImage }}
    - id: secrets
      name: Variables
      action: vault:secrets
      input:
        environment: ${{ parameters.name }}
        variablesFile: ./variables.yaml
    - id: fetch
      action: fetch:template
      input:
        url: ./skeleton
        values:
          image: ${{ steps.image.output.image }}
"""
DEPLOYMENT = deployment(image="${{ values.image }}")


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              buildah_storage: Path) -> Path:  # noqa: F811
    monkeypatch.setenv("ENVFORGE_BUILDAH_ROOT", str(buildah_storage))
    return use_templates(tmp_path / "templates", monkeypatch, {"rebuilt": (TEMPLATE, {
        "skeleton/manifests/deployment.yaml": DEPLOYMENT,
        "variables.yaml": "variables:\n  GREETING: hello\n"})})


def _image(name: str) -> str:
    return next(line.split("image:", 1)[1].strip()
                for line in show(name, "manifests/deployment.yaml").splitlines()
                if "image:" in line)


def _config_maps(name: str) -> dict[str, str]:
    return {f: show(name, f.split(f"environments/{name}/", 1)[1])
            for f in manifest_files(name) if not f.endswith("/deployment.yaml")}


def _create(name: str, bare: Path, to: Registry, base: str) -> None:
    assert main(["env", "create", name, "--template", "rebuilt",
                 "--set", f"repoUrl={bare.as_uri()}", "--set", "ref=main",
                 "--set", f"registry={to.access.address}", "--set", f"baseImage={base}"]) == 0


def test_an_image_whose_build_inputs_changed_is_built_again_and_only_it(
        templates: Path, make_repo: Callable[..., Path], registry: Registry,  # noqa: F811
        base_image: str, builder: BuildahBuilder,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    bare = make_repo({"index.html": "<p>one</p>\n"}, name="web")
    _create("pr-11", bare, registry, base_image)
    first = _image("pr-11")
    assert "@sha256:" in first
    config_maps = _config_maps("pr-11")
    assert config_maps  # vault:secrets wrote its ConfigMap
    commit_to(bare, {"index.html": "<p>two</p>\n"}, "refs/heads/feature")
    tags_before = registry.tags("web")
    capsys.readouterr()
    before = commit_count(embedded_remote())

    assert main(["env", "upgrade", "pr-11", "--set", "ref=feature", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "pr-11: would upgrade" in out
    assert "would build again: step 'image' (image:build: ref changed)" in out
    assert f"-        image: {first}" in out
    assert "+        image: (built again by the upgrade, step image)" in out
    assert "secrets" not in out and "dry-run:" not in out  # the Variables step is carried
    assert commit_count(embedded_remote()) == before
    assert registry.tags("web") == tags_before  # a dry run builds nothing

    assert main(["env", "upgrade", "pr-11", "--set", "ref=feature"]) == 0
    out = capsys.readouterr().out
    assert "1 upgraded" in out and "built again: step 'image'" in out
    assert commit_count(embedded_remote()) == before + 1
    second = _image("pr-11")
    assert "@sha256:" in second and second != first
    digest = second.rsplit("@", 1)[1]
    assert len(registry.tags("web")) == len(tags_before) + 1
    assert any(registry.digest("web", tag) == digest for tag in registry.tags("web"))
    assert _config_maps("pr-11") == config_maps  # the Variables step's ConfigMap as it was


def test_an_upgrade_that_fails_after_building_leaves_no_image_and_no_commit(
        templates: Path, make_repo: Callable[..., Path], registry: Registry,  # noqa: F811
        base_image: str, builder: BuildahBuilder,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    bare = make_repo({"index.html": "<p>one</p>\n"}, name="shop")
    _create("pr-12", bare, registry, base_image)
    first = _image("pr-12")
    commit_to(bare, {"index.html": "<p>three</p>\n"}, "refs/heads/broken")
    # the new template version's Deployment no longer validates: found after the build
    deployment = templates / "rebuilt" / "skeleton/manifests/deployment.yaml"
    deployment.write_text(deployment.read_text().replace("replicas: 1", "replicas: many"))
    tags_before = registry.tags("web")
    capsys.readouterr()
    before = commit_count(embedded_remote())

    code = main(["env", "upgrade", "pr-12", "--set", "ref=broken"])
    captured = capsys.readouterr()
    assert code != 0
    assert "pr-12: failed; nothing committed" in captured.out
    assert "replicas" in captured.err
    assert commit_count(embedded_remote()) == before
    assert _image("pr-12") == first
    assert registry.tags("web") == tags_before  # the image built for it was rolled back
