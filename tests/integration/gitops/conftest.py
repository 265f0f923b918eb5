"""Fixtures for the gitops integration tests: a real bare remote and stores on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from envforge.gitops.repository import open_store
from envforge.gitops.settings import GitOpsSettings
from envforge.gitops.store import EnvironmentStore
from tests.unit.gitops.helpers import write_manifests

REPO_ROOT = Path(__file__).resolve().parents[3]
ARGOCD_SCHEMAS = REPO_ROOT.parent / "shared" / "schemas" / "argocd"

StoreFactory = Callable[[str], EnvironmentStore]


@pytest.fixture
def stores(bare_repo: Path, tmp_path: Path) -> Iterator[StoreFactory]:
    """Stores on the bare remote, one per cache name (a cache per machine)."""
    with ExitStack() as stack:
        def make(cache: str = "cache") -> EnvironmentStore:
            return stack.enter_context(open_store(
                url=bare_repo.as_uri(), branch="main", cache_root=tmp_path / cache,
                settings=GitOpsSettings(max_ttl_seconds=7 * 86400)))
        yield make


@pytest.fixture
def store(stores: StoreFactory) -> EnvironmentStore:
    return stores("cache")


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    return write_manifests(tmp_path / "template-manifests")
