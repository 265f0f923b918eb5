"""Readers of the GitOps repository never wait for a writer: they fetch the branch's newest
commit into a ref of their own and read a per-commit snapshot (envforge/git/snapshot.py)."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

from envforge.git.publishing import GitPublisher
from envforge.gitops.ancestry import commit_contains
from envforge.gitops.store import EnvironmentStore
from tests.helpers import git
from tests.integration.gitops.conftest import StoreFactory
from tests.unit.gitops.helpers import spec


def _create(store: EnvironmentStore, name: str, manifests: Path) -> str:
    result = store.create(store.new_record(name, spec(), "48h", "run-1"), manifests, "run-1")
    assert result.commit
    return result.commit


def test_a_reader_does_not_wait_for_the_writers_lock(stores: StoreFactory,
                                                      manifests: Path) -> None:
    reader, writer = stores("reader"), stores("writer")
    reader.publisher.lock_timeout = 1.0  # before: find() gave up on the held lock after 1 s
    _create(writer, "first", manifests)
    assert reader.find("first") is not None  # makes the reader's cached copy
    pushed = _create(writer, "second", manifests)  # newer than the reader's copy
    lock_file = reader.publisher._lock_file  # what a writer on the reader's machine holds
    with open(lock_file, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a commit and push in progress
        found = reader.find("second")
        assert found is not None and found.name == "second"
        assert [r.name for r in reader.list()] == ["first", "second"]
        assert commit_contains(reader.publisher.url, "main", pushed, pushed)
        fcntl.flock(held, fcntl.LOCK_UN)


def test_readers_of_one_commit_share_its_snapshot_and_a_new_commit_gets_its_own(
        store: EnvironmentStore, manifests: Path) -> None:
    first = _create(store, "one", manifests)
    seen = [store.publisher.read_newest(lambda s: (s.commit, s.root)) for _ in range(2)]
    assert seen[0] == seen[1] and seen[0][0] == first
    assert (seen[0][1] / "environments" / "one" / "environment.yaml").is_file()
    second = _create(store, "two", manifests)
    commit, root = store.publisher.read_newest(lambda s: (s.commit, s.root))
    assert commit == second and root != seen[0][1]
    assert sorted(os.listdir(root / "environments")) == ["one", "two"]


def test_an_empty_branch_reads_as_no_commit(store: EnvironmentStore) -> None:
    assert store.publisher.read_newest(lambda s: (s.commit, os.listdir(s.root))) == (None, [])
    assert store.list() == [] and store.find("nothing") is None


def test_a_link_in_the_repository_is_read_as_its_text_never_followed(
        bare_repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("not for readers")
    work = tmp_path / "author"
    git("clone", "--quiet", str(bare_repo), str(work))
    (work / "environments").mkdir()
    os.symlink(secret, work / "environments" / "link.yaml")
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "link")
    git("-C", str(work), "push", "-q", "origin", "HEAD:main")
    publisher = GitPublisher(bare_repo.as_uri(), "main", tmp_path / "cache", lock_timeout=5)
    read = publisher.read_newest(lambda s: (s.root / "environments" / "link.yaml"))
    assert not read.is_symlink() and read.read_text() == str(secret)


def test_a_tampered_cached_copy_is_rebuilt_before_it_is_read(store: EnvironmentStore,
                                                              manifests: Path) -> None:
    _create(store, "kept", manifests)
    assert store.find("kept") is not None
    config = store.publisher.workdir / ".git" / "config"
    subprocess.run(["git", "config", "--file", str(config), "core.fsmonitor", "false"],
                   check=True)  # a key envforge never sets: the copy is not trusted
    assert store.find("kept") is not None
    assert "fsmonitor" not in config.read_text()


def test_a_reader_moves_no_ref_the_writers_use(stores: StoreFactory, manifests: Path) -> None:
    # git's opportunistic update of refs/remotes/origin/main by a reader's fetch raced the
    # writers' fetch and push on this machine: "cannot lock ref" failed a destroy
    local, other = stores("local"), stores("other")
    _create(local, "mine", manifests)
    workdir = local.publisher.workdir
    tracking = git("rev-parse", "refs/remotes/origin/main", cwd=workdir)
    newer = _create(other, "theirs", manifests)
    assert local.publisher.read_newest(lambda s: s.commit) == newer
    assert git("rev-parse", "refs/remotes/origin/main", cwd=workdir) == tracking
    assert not (workdir / ".git" / "FETCH_HEAD").exists() or \
        newer not in (workdir / ".git" / "FETCH_HEAD").read_text()
