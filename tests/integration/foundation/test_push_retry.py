"""One retry layer for lost push races, against real bare repositories: a rival writer that
pushes before every one of our pushes makes a persistent race; the attempts are counted and
stay within the configured budget, and a push the remote refuses is not retried at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.errors import (
    PushConflictError,
    PushRejectedError,
    RetriesExhaustedError,
    TemporaryError,
)
from envforge.git.publishing import GitPublisher
from envforge.settings import GitOpsSection
from tests.helpers import commit_count, git, reject_pushes


def _source(root: Path) -> Path:
    (root / "f.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "f.yaml").write_text("a: 1\n")
    return root


class Rival:
    """Another writer (its own clone) that pushes a commit whenever asked: called from our
    publisher's ``before_write``, it moves the branch after our sync and before our push."""

    def __init__(self, bare: Path, workdir: Path) -> None:
        git("clone", "--quiet", bare.as_uri(), str(workdir))
        git("checkout", "--quiet", "-B", "main", cwd=workdir)
        self.workdir, self.pushes = workdir, 0

    def push(self, _: Path) -> None:
        self.pushes += 1
        (self.workdir / "rival.txt").write_text(str(self.pushes))
        git("add", "rival.txt", cwd=self.workdir)
        git("-c", "user.name=rival", "-c", "user.email=r@x", "commit", "--quiet", "-m",
            f"rival {self.pushes}", cwd=self.workdir)
        git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=self.workdir)


def test_a_persistent_push_race_stops_at_the_configured_attempts(bare_repo: Path,
                                                                  tmp_path: Path) -> None:
    rival = Rival(bare_repo, tmp_path / "rival")
    settings = GitOpsSection(push_attempts=4, push_retry_seconds=60)
    publisher = GitPublisher(bare_repo.as_uri(), "main", tmp_path / "cache", settings=settings)
    with pytest.raises(RetriesExhaustedError, match=r"gave up after 4 attempt\(s\)") as info:
        publisher.publish(_source(tmp_path / "src"), "apps/x", "mine", before_write=rival.push)
    assert rival.pushes == 4  # one sync-and-write per attempt: exactly the configured number
    assert isinstance(info.value.__cause__, PushConflictError)
    # permanent: Prefect's task retries (TemporaryError only) will not multiply the attempts
    assert not isinstance(info.value, TemporaryError)
    assert commit_count(bare_repo) == 4  # the rival's commits only; none of ours landed
    assert "ENVFORGE_GIT_PUSH_ATTEMPTS" in str(info.value) and "\n" not in str(info.value)
    # the cached copy is left as the remote is
    assert git("status", "--porcelain", cwd=publisher.workdir) == ""
    assert git("rev-parse", "HEAD", cwd=publisher.workdir) == git(
        "--git-dir", str(bare_repo), "rev-parse", "main")


def test_a_refused_push_is_not_retried(bare_repo: Path, tmp_path: Path) -> None:
    attempts: list[Path] = []
    publisher = GitPublisher(bare_repo.as_uri(), "main", tmp_path / "cache",
                             settings=GitOpsSection(push_attempts=5))
    reject_pushes(bare_repo, "branch main is protected")
    with pytest.raises(PushRejectedError, match="refused the push"):
        publisher.publish(_source(tmp_path / "src"), "apps/x", "mine",
                          before_write=attempts.append)
    assert len(attempts) == 1
    assert commit_count(bare_repo) == 0


def test_a_race_lost_a_few_times_still_lands(bare_repo: Path, tmp_path: Path) -> None:
    rival = Rival(bare_repo, tmp_path / "rival")

    def lose_twice(root: Path) -> None:
        if rival.pushes < 2:
            rival.push(root)

    publisher = GitPublisher(bare_repo.as_uri(), "main", tmp_path / "cache",
                             settings=GitOpsSection(push_attempts=3))
    result = publisher.publish(_source(tmp_path / "src"), "apps/x", "mine",
                               before_write=lose_twice)
    assert result.commit and rival.pushes == 2 and commit_count(bare_repo) == 3
