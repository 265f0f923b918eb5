"""The GitOps working copy's own links are data: a publish never writes through one (it
did, with replace: false, for a link below the target path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envforge.errors import EnvforgeError
from envforge.git.publishing import GitPublisher
from tests.helpers import git


def test_a_publish_never_writes_through_a_link_the_repository_holds(
        bare_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    seed = tmp_path / "seed"
    git("clone", "-q", str(bare_repo), str(seed))
    (seed / "apps/shop").mkdir(parents=True)
    (seed / "apps/shop/keep.yaml").write_text("k: 1\n")
    os.symlink(outside, seed / "apps/shop/sub")
    git("-C", str(seed), "add", "-A")
    git("-C", str(seed), "commit", "-qm", "seed with a link")
    git("-C", str(seed), "push", "-q", "origin", "HEAD:main")
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub/evil.yaml").write_text("x: 1\n")
    publisher = GitPublisher(bare_repo.as_uri(), "main", tmp_path / "cache")
    with pytest.raises(EnvforgeError, match="symbolic link") as info:
        publisher.publish(source, "apps/shop", "m", replace=False)
    assert "\n" not in str(info.value)
    assert list(outside.iterdir()) == []
