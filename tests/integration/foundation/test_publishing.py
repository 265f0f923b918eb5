"""GitPublisher against real bare repositories: commits, no-op re-renders, races, rejections,
and undoing a commit."""

import threading
from pathlib import Path

import pytest

from envforge.errors import GitError, PathEscapeError, PushRejectedError
from envforge.git.publishing import GitPublisher, redact_url
from tests.helpers import commit_count, git, reject_pushes, remote_files


def _files(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return root


def _publisher(bare: Path, cache: Path) -> GitPublisher:
    return GitPublisher(bare.as_uri(), "main", cache)


def test_publish_commits_once_and_skips_unchanged(bare_repo: Path, tmp_path: Path) -> None:
    src = _files(tmp_path / "src", {"a.yaml": "a: 1\n", "sub/b.yaml": "b: 2\n"})
    pub = _publisher(bare_repo, tmp_path / "cache")
    first = pub.publish(src, "apps/shop", "add shop", trailers={"Envforge-Run": "r1"})
    assert first.commit and first.parent is None and first.files_changed == 2
    assert remote_files(bare_repo) == ["apps/shop/a.yaml", "apps/shop/sub/b.yaml"]
    message = git("--git-dir", str(bare_repo), "log", "-1", "--format=%B")
    assert message.startswith("add shop") and "Envforge-Run: r1" in message

    again = pub.publish(src, "apps/shop", "add shop")
    assert again.commit is None and commit_count(bare_repo) == 1


def test_replace_removes_files_the_source_no_longer_has(bare_repo: Path, tmp_path: Path) -> None:
    pub = _publisher(bare_repo, tmp_path / "cache")
    pub.publish(_files(tmp_path / "v1", {"a": "1", "b": "2"}), "apps/x", "v1")
    pub.publish(_files(tmp_path / "v2", {"a": "1"}), "apps/x", "v2")
    assert remote_files(bare_repo) == ["apps/x/a"]


def test_replace_at_the_repository_root_is_refused(bare_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="delete everything else"):
        _publisher(bare_repo, tmp_path / "c").publish(_files(tmp_path / "s", {"a": "1"}), ".", "m")


@pytest.mark.parametrize("target", ["../outside", "/abs/path", "apps/../../x"])
def test_target_path_cannot_leave_the_repository(bare_repo: Path, tmp_path: Path,
                                                 target: str) -> None:
    with pytest.raises(PathEscapeError, match="escapes the repository"):
        _publisher(bare_repo, tmp_path / "c").publish(_files(tmp_path / "s", {"a": "1"}),
                                                      target, "m")
    assert commit_count(bare_repo) == 0


def test_a_rejected_push_raises_and_leaves_the_working_copy_clean(bare_repo: Path,
                                                                   tmp_path: Path) -> None:
    pub = _publisher(bare_repo, tmp_path / "cache")
    pub.publish(_files(tmp_path / "v1", {"a": "1"}), "apps/x", "v1")
    reject_pushes(bare_repo, "branch main is protected")
    with pytest.raises(PushRejectedError) as info:
        pub.publish(_files(tmp_path / "v2", {"a": "2"}), "apps/x", "v2")
    assert "refused the push" in str(info.value)
    assert "pre-receive hook declined" in str(info.value) or "protected" in str(info.value)
    assert commit_count(bare_repo) == 1
    assert git("status", "--porcelain", cwd=pub.workdir) == ""
    assert git("rev-parse", "HEAD", cwd=pub.workdir) == git(
        "--git-dir", str(bare_repo), "rev-parse", "main")


def test_unreachable_remote_is_a_clear_error(tmp_path: Path) -> None:
    pub = GitPublisher((tmp_path / "missing.git").as_uri(), "main", tmp_path / "cache")
    with pytest.raises(GitError, match="could not clone file://"):
        pub.publish(_files(tmp_path / "s", {"a": "1"}), "apps/x", "m")


def test_concurrent_writers_with_separate_caches_all_land(bare_repo: Path, tmp_path: Path) -> None:
    """Different machines (caches) racing on one remote: non-fast-forward pushes retry."""
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            pub = GitPublisher(bare_repo.as_uri(), "main", tmp_path / f"cache{i}",
                               max_attempts=12)
            pub.publish(_files(tmp_path / f"s{i}", {"f.yaml": str(i)}), f"envs/e{i}", f"e{i}")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert remote_files(bare_repo) == [f"envs/e{i}/f.yaml" for i in range(6)]
    assert commit_count(bare_repo) == 6


def test_undo_drops_a_head_commit_and_reverts_one_built_upon(bare_repo: Path,
                                                             tmp_path: Path) -> None:
    pub = _publisher(bare_repo, tmp_path / "cache")
    base = pub.publish(_files(tmp_path / "a", {"x": "1"}), "apps/a", "a")
    mine = pub.publish(_files(tmp_path / "b", {"x": "1"}), "apps/b", "b")
    assert mine.commit
    assert pub.undo(mine.commit, "undo b") == "removed"
    assert git("--git-dir", str(bare_repo), "rev-parse", "main") == base.commit
    mine = pub.publish(_files(tmp_path / "b", {"x": "1"}), "apps/b", "b")
    pub.publish(_files(tmp_path / "c", {"x": "1"}), "apps/c", "c")  # someone builds on top
    assert mine.commit
    assert pub.undo(mine.commit, "undo b again") == "reverted"
    assert remote_files(bare_repo) == ["apps/a/x", "apps/c/x"]


def test_credentials_never_appear_in_messages() -> None:
    assert redact_url("push to https://bot:s3cr3t@git.example.com/r.git failed") == (
        "push to https://***@git.example.com/r.git failed")
    pub = GitPublisher("https://bot:s3cr3t@git.example.com/r.git", "main", Path("/nonexistent"))
    assert "s3cr3t" not in pub.safe_url


def test_undo_of_a_branch_first_commit_reverts_it(bare_repo: Path, tmp_path: Path) -> None:
    pub = _publisher(bare_repo, tmp_path / "cache")
    first = pub.publish(_files(tmp_path / "a", {"x": "1"}), "apps/a", "a")
    assert first.commit
    assert pub.undo(first.commit, "undo a") == "reverted"
    assert remote_files(bare_repo) == []
