"""Mirror cache and ref resolution with local git repositories (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.errors import ImageSourceError, RefNotFoundError, SourceUnreachableError
from envforge.images.source import GitSourceCache, ref_candidates
from tests.helpers import git


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    (work / "Dockerfile").write_text("FROM scratch\n")
    (work / "web").mkdir()
    (work / "web" / "index.html").write_text("hi\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "one", cwd=work)
    git("tag", "-a", "v1", "-m", "release 1", cwd=work)  # annotated: must peel to the commit
    bare = tmp_path / "remote.git"
    git("clone", "--quiet", "--bare", str(work), str(bare))
    return bare


def _advance(bare: Path, ref: str, tmp_path: Path, name: str) -> str:
    work = tmp_path / f"scratch-{name}"
    git("clone", "--quiet", str(bare), str(work))
    (work / f"{name}.txt").write_text(name)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", name, cwd=work)
    git("push", "--quiet", "origin", f"HEAD:{ref}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def test_ref_candidates() -> None:
    assert ref_candidates("main") == ["refs/heads/main", "refs/tags/main"]
    assert ref_candidates("pull/12/head") == ["refs/pull/12/head"]
    assert ref_candidates("refs/pull/12/head") == ["refs/pull/12/head"]
    assert ref_candidates("pull/12") == ["refs/pull/12/head"]
    assert ref_candidates("refs/heads/x") == ["refs/heads/x"]


def test_resolves_branch_tag_commit_and_pull_request(remote: Path, tmp_path: Path) -> None:
    cache = GitSourceCache(tmp_path / "cache")
    url = remote.as_uri()
    head = git("--git-dir", str(remote), "rev-parse", "main")
    pr = _advance(remote, "refs/pull/3/head", tmp_path, "pr")
    branch = cache.resolve(url, "main")
    assert (branch.commit, branch.ref_name) == (head, "refs/heads/main")
    tag = cache.resolve(url, "v1")
    assert (tag.commit, tag.ref_name) == (head, "refs/tags/v1")
    by_sha = cache.resolve(url, head[:8])
    assert (by_sha.commit, by_sha.ref_name) == (head, head)
    by_pr = cache.resolve(url, "pull/3/head")
    assert (by_pr.commit, by_pr.ref_name) == (pr, "refs/pull/3/head")
    assert len(list((tmp_path / "cache" / "mirrors").glob("*.git"))) == 1  # one mirror


def test_moved_branch_is_fetched_into_the_existing_mirror(remote: Path, tmp_path: Path) -> None:
    cache = GitSourceCache(tmp_path / "cache")
    first = cache.resolve(remote.as_uri(), "main").commit
    newer = _advance(remote, "refs/heads/main", tmp_path, "second")
    assert cache.resolve(remote.as_uri(), "main").commit == newer != first
    later = _advance(remote, "refs/heads/topic", tmp_path, "topic")
    assert cache.resolve(remote.as_uri(), later).commit == later  # unknown sha: fetched


def test_ref_not_found_names_branches_and_tags(remote: Path, tmp_path: Path) -> None:
    cache = GitSourceCache(tmp_path / "cache")
    with pytest.raises(RefNotFoundError) as caught:
        cache.resolve(remote.as_uri(), "does-not-exist")
    assert "branches: main" in str(caught.value) and "tags: v1" in str(caught.value)
    with pytest.raises(RefNotFoundError, match="ref is empty"):
        cache.resolve(remote.as_uri(), " ")


def test_unreachable_and_password_in_url(tmp_path: Path) -> None:
    cache = GitSourceCache(tmp_path / "cache")
    with pytest.raises(SourceUnreachableError, match="cannot clone"):
        cache.resolve((tmp_path / "missing.git").as_uri(), "main")
    assert not list((tmp_path / "cache" / "mirrors").glob("*.git"))
    with pytest.raises(ImageSourceError) as caught:
        cache.resolve("https://bob:hunter2@git.example.com/app.git", "main")
    assert "hunter2" not in str(caught.value) and "GitCredentials" in str(caught.value)


def test_tree_view_and_worktree(remote: Path, tmp_path: Path) -> None:
    cache = GitSourceCache(tmp_path / "cache")
    source = cache.resolve(remote.as_uri(), "main")
    with cache.open_tree(source) as view:
        assert view.is_file("Dockerfile") and view.is_file("web/index.html")
        assert not view.is_file("web") and not view.is_file("nope")
        assert view.read_text("Dockerfile") == "FROM scratch\n"
        assert view.names("web") == {"index.html"}
    with cache.worktree(source, tmp_path / "builds") as checkout:
        assert (checkout / "web" / "index.html").read_text() == "hi\n"
        assert not (checkout / ".git").exists()  # not copied into build contexts
    assert not checkout.exists()
    worktrees = git("--git-dir", str(source.mirror), "worktree", "list")
    assert str(checkout) not in worktrees


def test_a_mirror_is_per_url_and_credentials(remote: Path, tmp_path: Path) -> None:
    """A run without a private repository's credentials never reads the mirror another run
    fetched with them (a commit already there would otherwise be built without any fetch)."""
    from envforge.images.git_auth import GitAuth

    cache = GitSourceCache(tmp_path / "cache")
    url = remote.as_uri()
    with_block = cache.resolve(url, "main", GitAuth(identity="team-a-creds"))
    anonymous = cache.resolve(url, with_block.commit)
    assert with_block.mirror != anonymous.mirror
    assert cache.mirror_dir(url, "team-a-creds") == with_block.mirror
    assert cache.mirror_dir(url) == anonymous.mirror
    assert cache.resolve(url, "main", GitAuth(identity="team-a-creds")).mirror == \
        with_block.mirror
