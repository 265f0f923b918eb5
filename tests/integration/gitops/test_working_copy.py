"""The cached working copy: only the environment's paths are staged, and a copy left dirty by
an interrupted run (the dirty marker) is reset before the next change."""

import os
from pathlib import Path

from envforge.gitops.store import EnvironmentStore
from tests.helpers import git, remote_files
from tests.unit.gitops.helpers import spec


def test_only_the_environments_paths_are_committed(store: EnvironmentStore, bare_repo: Path,
                                                   manifests: Path) -> None:
    store.create(store.new_record("pr-1", spec(), "1d"), manifests)
    stray = store.publisher.workdir / "environments" / "other" / "stray.yaml"
    stray.parent.mkdir(parents=True)
    stray.write_text("left: behind\n")
    store.create(store.new_record("pr-2", spec(), "1d"), manifests)
    assert not [f for f in remote_files(bare_repo) if "other" in f]
    assert git("show", "--name-only", "--format=", "HEAD", cwd=store.publisher.workdir) \
        .splitlines() == sorted(f for f in remote_files(bare_repo) if "pr-2" in f)


def test_an_interrupted_run_is_cleaned_up_before_the_next(store: EnvironmentStore,
                                                          bare_repo: Path,
                                                          manifests: Path) -> None:
    store.create(store.new_record("pr-1", spec(), "1d"), manifests)
    workdir = store.publisher.workdir
    (workdir / "environments" / "pr-1" / "environment.yaml").write_text("half: written\n")
    (workdir / "environments" / "pr-9").mkdir()
    (workdir / "environments" / "pr-9" / "x.yaml").write_text("a: 1\n")
    (workdir / ".git" / "envforge-dirty").touch()  # what apply() leaves if killed mid-write
    # readers read the remote's commit, not the half-written copy (envforge/git/snapshot.py)
    assert [r.name for r in store.list()] == ["pr-1"]
    assert store.get("pr-1").name == "pr-1"
    # the next use of the working copy puts it back as the remote is
    assert store.publisher.read(lambda root: sorted(os.listdir(root / "environments"))) \
        == ["pr-1"]
    assert git("status", "--porcelain", "--ignored", cwd=workdir) == ""
    assert not (workdir / ".git" / "envforge-dirty").exists()
