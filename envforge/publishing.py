"""Publishing files to a Git repository: a cached working copy, one commit per change, push
with bounded, jittered rebase-and-retry when another writer got there first.

Every message that leaves this module has credentials stripped from URLs.
"""

from __future__ import annotations

import fcntl
import hashlib
import random
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

from envforge.errors import GitError, PushRejectedError, TemporaryError
from envforge.paths import resolve_inside, safe_relative

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact_url(text: str) -> str:
    """Replace ``user:token@`` in every URL inside ``text`` with ``***@``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


class PushConflictError(GitError, TemporaryError):
    """Someone else pushed first; fetching, rebasing and pushing again may succeed."""


@dataclass(frozen=True)
class PublishResult:
    commit: str | None  # None when nothing changed
    parent: str | None
    files_changed: int
    branch: str


@dataclass(frozen=True)
class Author:
    name: str = "envforge"
    email: str = "envforge@localhost"


class GitPublisher:
    """Publishes into one branch of one remote through a working copy cached on disk.

    A file lock serialises writers sharing the cache; writers on other machines are handled
    by the non-fast-forward retry.
    """

    def __init__(
        self,
        url: str,
        branch: str,
        cache_root: Path,
        author: Author = Author(),
        max_attempts: int = 6,
        git_env: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.branch = branch
        self.author = author
        self.max_attempts = max_attempts
        self.git_env = dict(git_env or {})
        key = hashlib.sha256(f"{url}#{branch}".encode()).hexdigest()[:16]
        self.workdir = cache_root / "git" / key
        self._lock_file = cache_root / "git" / f"{key}.lock"

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    def publish(
        self,
        source: Path,
        target_path: str,
        message: str,
        replace: bool = True,
        trailers: Mapping[str, str] | None = None,
    ) -> PublishResult:
        """Make ``target_path`` in the repository hold the files of ``source``; commit and push.

        With ``replace``, files under ``target_path`` that are not in ``source`` are removed
        (a re-render drops what the template no longer makes). No change, no commit.
        """
        target = safe_relative(target_path, f"repository {self.safe_url}")
        if replace and not target.parts:
            raise GitError(
                "publishing with replace to the repository root would delete everything else "
                "in it: give a targetPath, or set replace: false"
            )
        full_message = _with_trailers(message, trailers or {})
        with self._locked_copy() as repo:
            for attempt in range(1, self.max_attempts + 1):
                self._sync(repo)
                parent = _head(repo)
                dest = resolve_inside(Path(repo.working_dir), str(target), "repository")
                if replace and dest.exists():
                    shutil.rmtree(dest)
                _copy_tree(source, dest)
                repo.git.add("--all", "--", str(target) if target.parts else ".")
                changed = _staged_files(repo, parent)
                if not changed:
                    return PublishResult(None, parent, 0, self.branch)
                repo.git.commit("--quiet", "-m", full_message, env=self._author_env())
                commit = repo.head.commit.hexsha
                try:
                    self._push(repo, f"HEAD:refs/heads/{self.branch}")
                except PushConflictError:
                    if attempt == self.max_attempts:
                        self._sync(repo)
                        raise
                    _jittered_sleep(attempt)
                    continue
                except GitError:
                    self._sync(repo)  # leave the cached copy as the remote is
                    raise
                return PublishResult(commit, parent, len(changed), self.branch)
        raise AssertionError("unreachable")  # pragma: no cover

    def undo(self, commit: str, message: str) -> str:
        """Take back a published commit: drop it if it is still the branch head (no-one built
        on it), otherwise push a revert. Returns how it was undone."""
        with self._locked_copy() as repo:
            for attempt in range(1, self.max_attempts + 1):
                self._sync(repo)
                head = _head(repo)
                try:
                    parents = repo.commit(commit).parents
                    # Drop the commit if nobody built on it. A branch's first commit cannot be
                    # dropped (remotes refuse to delete their default branch): revert it.
                    if head == commit and parents:
                        self._push(
                            repo,
                            f"{parents[0].hexsha}:refs/heads/{self.branch}",
                            f"--force-with-lease=refs/heads/{self.branch}:{commit}",
                        )
                        self._sync(repo)
                        return "removed"
                    repo.git.revert("--no-edit", commit, env=self._author_env())
                    repo.git.commit("--amend", "--quiet", "-m", message, env=self._author_env())
                    self._push(repo, f"HEAD:refs/heads/{self.branch}")
                    return "reverted"
                except PushConflictError:
                    if attempt == self.max_attempts:
                        raise
                    _jittered_sleep(attempt)
                except git.GitCommandError as e:
                    raise GitError(f"could not undo commit {commit[:12]}: {_stderr(e)}") from e
        raise AssertionError("unreachable")  # pragma: no cover

    # --- internals -------------------------------------------------------------------

    @contextmanager
    def _locked_copy(self) -> Iterator[git.Repo]:
        self._lock_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_file, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self._open_copy()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _open_copy(self) -> git.Repo:
        if (self.workdir / ".git").is_dir():
            repo = git.Repo(self.workdir)
            repo.git.update_environment(**self.git_env)
            return repo
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        try:
            repo = git.Repo.clone_from(self.url, self.workdir, env=self.git_env or None)
        except git.GitCommandError as e:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise GitError(f"could not clone {self.safe_url}: {_stderr(e)}") from e
        repo.git.update_environment(**self.git_env)
        return repo

    def _sync(self, repo: git.Repo) -> None:
        """Make the working copy exactly the remote branch (or empty if it has none yet)."""
        try:
            repo.git.fetch("--quiet", "--prune", "origin")
            remote_ref = f"refs/remotes/origin/{self.branch}"
            if repo.git.rev_parse("--verify", "--quiet", remote_ref, with_exceptions=False):
                repo.git.checkout("--quiet", "-B", self.branch, remote_ref)
                repo.git.reset("--quiet", "--hard", remote_ref)
            else:  # the remote has no such branch yet: start from an empty, unborn branch
                repo.git.symbolic_ref("HEAD", f"refs/heads/{self.branch}")
                repo.git.update_ref("-d", f"refs/heads/{self.branch}", with_exceptions=False)
                repo.git.read_tree("--empty")
            repo.git.clean("-q", "-f", "-d", "-x")
        except git.GitCommandError as e:
            raise GitError(f"could not fetch {self.safe_url}: {_stderr(e)}") from e

    def _push(self, repo: git.Repo, refspec: str, *options: str) -> None:
        try:
            repo.git.push("--porcelain", *options, "origin", refspec)
        except git.GitCommandError as e:
            text = _stderr(e) + "\n" + redact_url(str(e.stdout or ""))
            # Lost races: the branch moved (non-fast-forward), or another push held the
            # remote's ref lock at the same moment ("failed to update ref", "cannot lock ref").
            if re.search(r"\[rejected\].*(fetch first|non-fast-forward)|stale info|"
                         r"failed to update ref|cannot lock ref|failed to lock", text):
                raise PushConflictError(
                    f"push to {self.safe_url} ({self.branch}) lost a race with another writer"
                ) from e
            reason = _rejection_reason(text)
            raise PushRejectedError(
                f"the remote {self.safe_url} refused the push to {self.branch}: {reason}"
            ) from e

    def _author_env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.author.name,
            "GIT_AUTHOR_EMAIL": self.author.email,
            "GIT_COMMITTER_NAME": self.author.name,
            "GIT_COMMITTER_EMAIL": self.author.email,
            **self.git_env,
        }


def _with_trailers(message: str, trailers: Mapping[str, str]) -> str:
    if not trailers:
        return message
    lines = "\n".join(f"{k}: {v}" for k, v in trailers.items())
    return f"{message.rstrip()}\n\n{lines}\n"


def _head(repo: git.Repo) -> str | None:
    try:
        return repo.head.commit.hexsha
    except ValueError:  # an unborn branch: the remote has no commits yet
        return None


def _staged_files(repo: git.Repo, parent: str | None) -> list[str]:
    if parent is None:  # first commit of the branch: everything in the index is new
        return [f for f in repo.git.ls_files().splitlines() if f]
    return [f for f in repo.git.diff("--cached", "--name-only", parent).splitlines() if f]


def _copy_tree(source: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.rglob("*")):
        if ".git" in item.relative_to(source).parts:
            continue
        target = dest / item.relative_to(source)
        if item.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, target)


def _jittered_sleep(attempt: int) -> None:
    time.sleep(random.uniform(0.05, 0.2) * attempt)


def _stderr(e: git.GitCommandError) -> str:
    text = str(e.stderr or e).strip()
    text = re.sub(r"^stderr: ", "", text)
    return redact_url(" ".join(text.replace("'", "").split()))[:500]


def _rejection_reason(text: str) -> str:
    for pattern in (
        r"\[remote rejected\][^\n]*",
        r"remote: [^\n]+",
        r"(Authentication failed|Permission denied|could not read Username)[^\n]*",
        r"fatal: [^\n]+",
    ):
        match = re.search(pattern, text)
        if match:
            return redact_url(match.group(0).strip())
    return redact_url(text.strip().splitlines()[-1] if text.strip() else "no reason given")
