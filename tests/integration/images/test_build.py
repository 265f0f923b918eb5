"""Building real images with buildah from real Git refs into a real registry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from envforge.images.build import ImageBuildSpec, build_image
from envforge.images.builders import BuildahBuilder, BuildRequest, BuildResult, Logger
from envforge.images.source import GitSourceCache
from tests.helpers import git
from tests.integration.images.conftest import Registry, commit_to

pytestmark = [pytest.mark.buildah, pytest.mark.slow]
log = logging.getLogger("test.images")


class CountingBuilder(BuildahBuilder):
    """The real builder, counting how often it was asked to build."""

    def __init__(self, inner: BuildahBuilder) -> None:
        super().__init__(storage_root=inner.storage_root, run_root=inner.run_root)
        self.calls = 0

    def build_and_push(self, request: BuildRequest, logger: Logger) -> BuildResult:
        self.calls += 1
        return super().build_and_push(request, logger)


def test_generated_static_stack_is_built_once_then_served_from_the_cache(
    make_repo: Callable[..., Path], registry: Registry, builder: BuildahBuilder,
    base_image: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    bare = make_repo({"index.html": "<h1>preview</h1>\n", "css/site.css": "h1{}\n"})
    counting = CountingBuilder(builder)
    sources = GitSourceCache(tmp_path / "sources")
    spec = ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app="web", base_image=base_image)

    with caplog.at_level(logging.INFO):
        first = build_image(spec, registry.access, counting, sources, log)
    assert not first.cached and first.stack == "static"
    assert first.image == f"{registry.access.host}/web@{first.digest}"
    tag = first.tagged.rsplit(":", 1)[1]
    assert tag.startswith(git("--git-dir", str(bare), "rev-parse", "main")[:12])
    assert registry.digest("web", tag) == first.digest
    assert any(r.getMessage().startswith("| STEP 2/") for r in caplog.records)  # streamed

    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = build_image(spec, registry.access, counting, sources, log)
    assert second.cached and second.digest == first.digest
    assert counting.calls == 1
    assert any("cached:" in r.getMessage() for r in caplog.records)
    assert not list((tmp_path / "sources" / "worktrees").glob("*"))  # worktree removed

    changed = ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app="web",
                             base_image=base_image, build_args={"FLAVOUR": "b"})
    third = build_image(changed, registry.access, counting, sources, log)
    assert not third.cached and third.tagged != first.tagged  # build args are in the key
    assert counting.calls == 2


def test_tag_commit_and_pull_request_head_refs(
    make_repo: Callable[..., Path], registry: Registry, builder: BuildahBuilder,
    base_image: str, tmp_path: Path,
) -> None:
    dockerfile = (f"FROM {base_image}\nCOPY . /app\n"
                  "RUN cat /app/version.txt > /app/built-from.txt\n"
                  'CMD ["cat", "/app/built-from.txt"]\n')
    bare = make_repo({"Dockerfile": dockerfile, "version.txt": "1\n"})
    main_commit = git("--git-dir", str(bare), "rev-parse", "main")
    git("--git-dir", str(bare), "tag", "v1.0", main_commit)
    pr_commit = commit_to(bare, {"version.txt": "2\n"}, "refs/pull/7/head", "PR 7")
    counting = CountingBuilder(builder)
    sources = GitSourceCache(tmp_path / "sources")

    def build(ref: str):  # type: ignore[no-untyped-def]
        spec = ImageBuildSpec(repo_url=bare.as_uri(), ref=ref, app="svc")
        return build_image(spec, registry.access, counting, sources, log)

    by_tag = build("v1.0")
    assert by_tag.ref_name == "refs/tags/v1.0" and by_tag.commit == main_commit
    assert by_tag.dockerfile == "Dockerfile from the repository"
    by_commit = build(main_commit[:10])
    assert by_commit.cached and by_commit.digest == by_tag.digest
    by_branch = build("main")
    assert by_branch.cached and by_branch.digest == by_tag.digest
    by_pr = build("pull/7/head")
    assert by_pr.commit == pr_commit and not by_pr.cached
    assert by_pr.digest != by_tag.digest
    assert counting.calls == 2
    assert sorted(registry.tags("svc")) == sorted(
        {by_tag.tagged.rsplit(":", 1)[1], by_pr.tagged.rsplit(":", 1)[1]})


def test_push_to_a_registry_that_requires_a_login(
    make_repo: Callable[..., Path], auth_registry: Registry, registry: Registry,
    builder: BuildahBuilder, base_image: str, tmp_path: Path,
) -> None:
    bare = make_repo({"index.html": "ok\n"})
    spec = ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app="private",
                          base_image=base_image)
    built = build_image(spec, auth_registry.access, builder,
                        GitSourceCache(tmp_path / "sources"), log)
    assert not built.cached
    assert auth_registry.digest("private", built.tagged.rsplit(":", 1)[1]) == built.digest
