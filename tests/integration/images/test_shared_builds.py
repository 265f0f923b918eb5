"""One build per commit across image names: real buildah, the real registry's blob mounts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from envforge.images import cache
from envforge.images.build import BuiltImage, ImageBuildSpec, build_image
from envforge.images.builders import BuildahBuilder, BuildRequest, BuildResult, Logger
from envforge.images.registry_client import RegistryClient
from envforge.images.source import GitSourceCache
from tests.integration.images.conftest import Registry

pytestmark = [pytest.mark.buildah, pytest.mark.slow]
log = logging.getLogger("test.images.shared")


class CountingBuilder(BuildahBuilder):
    """The real builder, counting its builds (under a lock: two threads call it)."""

    def __init__(self, inner: BuildahBuilder) -> None:
        super().__init__(storage_root=inner.storage_root, run_root=inner.run_root)
        self.calls = 0
        self._lock = threading.Lock()

    def build_and_push(self, request: BuildRequest, logger: Logger) -> BuildResult:
        with self._lock:
            self.calls += 1
        return super().build_and_push(request, logger)


def test_a_second_name_at_the_same_commit_is_tagged_from_the_first_build(
    make_repo: Callable[..., Path], registry: Registry, builder: BuildahBuilder,
    base_image: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    bare = make_repo({"index.html": f"<h1>{tmp_path.name}</h1>\n"})
    counting = CountingBuilder(builder)
    sources = GitSourceCache(tmp_path / "sources")

    def build(app: str) -> BuiltImage:
        spec = ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app=app,
                              base_image=base_image)
        return build_image(spec, registry.access, counting, sources, log)

    first = build("shared-a")
    assert not first.cached and first.reused_from is None and counting.calls == 1
    tag = first.tagged.rsplit(":", 1)[1]
    assert registry.digest(cache.SHARED_REPOSITORY, tag) == first.digest  # shared

    with caplog.at_level(logging.INFO):
        second = build("shared-b")
    assert counting.calls == 1  # nothing built
    assert not second.cached
    assert second.reused_from == f"{registry.access.host}/{cache.SHARED_REPOSITORY}:{tag}"
    assert second.digest == first.digest
    assert second.image == f"{registry.access.host}/shared-b@{first.digest}"
    assert registry.digest("shared-b", tag) == first.digest
    assert any(r.getMessage().startswith("reused: ") for r in caplog.records)
    with RegistryClient(registry.access) as client:  # its blobs are really there
        manifest = client.manifest("shared-b", tag)
        assert manifest is not None
        blobs = cache.manifest_blobs(manifest)
        assert blobs and all(client.mount_blob("shared-c", b, "shared-b") for b in blobs)
        # removing one name's tag (a rollback) leaves the others whole
        assert client.delete_manifest("shared-b", first.digest)
    assert registry.digest("shared-b", tag) is None
    assert registry.digest("shared-a", tag) == first.digest
    assert registry.digest(cache.SHARED_REPOSITORY, tag) == first.digest
    third = build("shared-b")  # and it is tagged again from the shared copy
    assert third.reused_from and third.digest == first.digest and counting.calls == 1


def test_two_names_building_one_commit_at_once_build_it_once(
    make_repo: Callable[..., Path], registry: Registry, builder: BuildahBuilder,
    base_image: str, tmp_path: Path,
) -> None:
    bare = make_repo({"index.html": f"<h1>{tmp_path.name} at once</h1>\n"})
    counting = CountingBuilder(builder)
    sources = GitSourceCache(tmp_path / "sources")
    results: dict[str, BuiltImage] = {}
    errors: list[BaseException] = []

    def build(app: str) -> None:
        spec = ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app=app,
                              base_image=base_image)
        try:
            results[app] = build_image(spec, registry.access, counting, sources, log)
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=build, args=(f"together-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(results) == 2
    assert counting.calls == 1
    assert len({r.digest for r in results.values()}) == 1
    assert sum(r.reused_from is not None for r in results.values()) == 1
