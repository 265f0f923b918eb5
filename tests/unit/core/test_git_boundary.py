"""The git boundary runs every git process: an inherited GIT_* variable never reaches it, stdin
is closed, a hung command is killed at its timeout, and a failure is one GitError with URL
credentials masked (its ``output`` too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.core.git_boundary import WorkingCopy, git_succeeds, run_git
from envforge.errors import GitError


def test_an_inherited_git_variable_does_not_reach_git(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run_git(["init", "--quiet", str(tmp_path / "mine")])
    run_git(["init", "--quiet", "--bare", str(tmp_path / "other.git")])
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "other.git"))  # would redirect every command
    copy = WorkingCopy(tmp_path / "mine")
    assert Path(copy.git("rev-parse", "--absolute-git-dir")) == tmp_path / "mine" / ".git"
    assert copy.head() is None and copy.branch() in ("main", "master")
    assert git_succeeds(["rev-parse", "--git-dir"], cwd=tmp_path / "mine")
    assert not git_succeeds(["rev-parse", "--verify", "--quiet", "HEAD"], cwd=tmp_path / "mine")


def test_a_failure_is_one_masked_git_error() -> None:
    with pytest.raises(GitError) as info:
        run_git(["ls-remote", "https://bot:s3cr3t@127.0.0.1:1/r.git"], what="listing r",
                timeout=30)
    assert str(info.value).startswith("listing r failed: ")
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in info.value.output
    assert "\n" not in str(info.value)


def test_a_hung_command_is_killed_at_its_timeout(tmp_path: Path) -> None:
    with pytest.raises(GitError, match=r"did not finish in 0.5 s"):
        run_git(["-c", "alias.hang=!sleep 20", "hang"], cwd=tmp_path, timeout=0.5)
