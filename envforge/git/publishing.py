"""Publishing files to a Git repository: a cached working copy, one commit per change, push
with bounded, jittered sync-and-retry when another writer got there first.

A lost push race (:class:`~envforge.errors.PushConflictError`, temporary) is retried here and
nowhere else, by the one retry layer (:mod:`envforge.core.retry`) within the budget of the
settings (``ENVFORGE_GIT_PUSH_ATTEMPTS`` attempts, ``ENVFORGE_GIT_PUSH_RETRY_SECONDS``); past
it the publish fails with a permanent ``RetriesExhaustedError``, which Prefect's task retries
leave alone.

Every message that leaves this module has credentials stripped from URLs. Files are written
into the working copy through the workspace file API (envforge.capabilities): a link the
repository holds is never followed, ``.git`` is never written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from envforge.capabilities import WorkspaceFiles
from envforge.core.git_boundary import WorkingCopy, open_working_copy, redact_url
from envforge.core.paths import resolve_inside, safe_relative
from envforge.core.retry import RetryPolicy, retry_temporary
from envforge.errors import (
    CapabilityError,
    GitError,
    GitLockTimeoutError,
    GitUnreachableError,
    PushConflictError,
    PushRejectedError,
    RetriesExhaustedError,
)
from envforge.git.snapshot import Snapshot, read_newest
from envforge.settings import GitOpsSection, load_settings

T = TypeVar("T")
logger = logging.getLogger("envforge.git")
LOCK_TIMEOUT_ENV = "ENVFORGE_GIT_LOCK_TIMEOUT"
#: What a RetriesExhaustedError of a push race suggests.
PUSH_RETRY_HINT = ("retry when the other writers are done, or raise ENVFORGE_GIT_PUSH_ATTEMPTS "
                   "/ ENVFORGE_GIT_PUSH_RETRY_SECONDS")
#: Called with the working copy root and the staged paths before each commit; raises to refuse.
PreCommitHook = Callable[[Path, list[str]], None]
#: Called with a commit after it was pushed (or, for undo, taken back), outside the lock, and
#: the repository paths it was allowed to change (None when not known: an undo).
AfterPushHook = Callable[[str, Sequence[str] | None], None]

__all__ = ["AfterPushHook", "Author", "GitPublisher", "PreCommitHook", "PublishResult",
           "Snapshot", "push_retry_policy", "redact_url"]


def push_retry_policy(settings: GitOpsSection) -> RetryPolicy:
    """The retry budget of lost push races, from the GitOps settings."""
    return RetryPolicy(max_attempts=settings.push_attempts,
                       max_seconds=settings.push_retry_seconds)


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
    by the non-fast-forward retry. ``settings`` (the GitOps section the caller was handed;
    default: the process's) give the lock timeout and the push retry budget unless
    ``lock_timeout`` / ``retry`` (or ``max_attempts``) are given.
    """

    def __init__(
        self,
        url: str,
        branch: str,
        cache_root: Path,
        author: Author = Author(),
        max_attempts: int | None = None,
        git_env: Mapping[str, str] | None = None,
        pre_commit: PreCommitHook | None = None,
        lock_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        settings: GitOpsSection | None = None,
    ) -> None:
        self.url = url
        self.branch = branch
        self.author = author
        if retry is None or lock_timeout is None:
            gitops = settings or load_settings().gitops
            if retry is None:
                retry = RetryPolicy(max_attempts or gitops.push_attempts,
                                    gitops.push_retry_seconds)
            if lock_timeout is None:
                lock_timeout = gitops.git_lock_timeout
        #: the one retry of lost push races (envforge.core.retry)
        self.retry: RetryPolicy = retry
        self.lock_timeout: float = lock_timeout
        self.git_env = dict(git_env or {})
        self.pre_commit = pre_commit
        #: e.g. the GitOps store's request that Argo CD refresh (envforge/gitops/refresh.py)
        self.after_push: AfterPushHook | None = None
        key = hashlib.sha256(f"{url}#{branch}".encode()).hexdigest()[:16]
        self.workdir = cache_root / "git" / key
        self._lock_file = cache_root / "git" / f"{key}.lock"
        #: readers' fetches only (envforge/git/snapshot.py): never held while writing
        self._read_lock_file = cache_root / "git" / f"{key}.read.lock"

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
        before_write: Callable[[Path], None] | None = None,
    ) -> PublishResult:
        """Make ``target_path`` in the repository hold the files of ``source``; commit and push.

        With ``replace``, files under ``target_path`` that are not in ``source`` are removed
        (a re-render drops what the template no longer makes). No change, no commit.
        ``before_write`` sees the synced copy first and may raise to refuse (nothing changes).
        """
        target = safe_relative(target_path, f"repository {self.safe_url}")
        if replace and not target.parts:
            raise GitError(
                "publishing with replace to the repository root would delete everything else "
                "in it: give a targetPath, or set replace: false"
            )

        def write(root: Path) -> None:
            if before_write is not None:
                before_write(root)
            resolve_inside(root, str(target), "repository")
            # through the file API: a link in the repository is data, never written through
            # (nor removed through), and .git is never written
            files = WorkspaceFiles(root, describe=f"repository {self.safe_url}")
            rel = str(target) if target.parts else ""
            try:
                if replace and rel:
                    files.remove(rel)
                files.copy_tree(WorkspaceFiles(source, describe="workspace"), "", rel)
            except CapabilityError as e:
                raise GitError(f"could not write {rel or '.'} in {self.safe_url}: {e}") from None

        return self.apply([str(target) if target.parts else "."], write, message, trailers)

    def apply(
        self,
        paths: Sequence[str],
        write: Callable[[Path], None],
        message: str | Callable[[], tuple[str, Mapping[str, str]]],
        trailers: Mapping[str, str] | None = None,
    ) -> PublishResult:
        """See :meth:`_apply`; then ``after_push`` with the new commit, if one was pushed."""
        result = self._apply(paths, write, message, trailers)
        if result.commit and self.after_push is not None:
            self.after_push(result.commit, list(paths))
        return result

    def _apply(
        self,
        paths: Sequence[str],
        write: Callable[[Path], None],
        message: str | Callable[[], tuple[str, Mapping[str, str]]],
        trailers: Mapping[str, str] | None = None,
    ) -> PublishResult:
        """Let ``write`` change the synced working copy (its root is passed), then commit what
        changed under ``paths`` and push; on a lost race, sync and call ``write`` again.

        Only ``paths`` are staged, cleaned and compared, so the cost does not grow with the
        rest of the repository. If ``write`` or the pre-commit hook raises, the copy is put
        back as the remote is and the error propagates: nothing is committed. ``message`` may
        be a callable returning (message, trailers), asked after ``write``.
        """
        with self._locked_copy() as copy:

            def attempt(_: int) -> PublishResult:
                self._sync(copy)
                parent = copy.head()
                root = copy.root
                self._mark_dirty(copy)
                try:
                    write(root)
                    changed = self._stage(copy, parent, paths)
                    if not changed:
                        self._mark_clean(copy)
                        return PublishResult(None, parent, 0, self.branch)
                    if self.pre_commit is not None:
                        self.pre_commit(root, changed)
                    text, extra = message() if callable(message) else (message, {})
                    full_message = _with_trailers(text, {**(trailers or {}), **extra})
                    commit = self._commit_index(copy, parent, full_message)
                except BaseException:
                    self._sync(copy, full=True)  # leave nothing half-done in the cached copy
                    raise
                try:
                    self._push(copy, f"HEAD:refs/heads/{self.branch}")
                except PushConflictError:
                    raise  # the next attempt syncs (the copy is marked dirty) and re-applies
                except GitError:
                    self._sync(copy, full=True)  # leave the cached copy as the remote is
                    raise
                self._mark_clean(copy)
                return PublishResult(commit, parent, len(changed), self.branch)

            return self._retrying(copy, attempt)

    def _retrying(self, copy: WorkingCopy, attempt: Callable[[int], T]) -> T:
        """``attempt`` under the push retry policy; when it runs out, the cached copy is put
        back as the remote is before the RetriesExhaustedError propagates."""
        try:
            return retry_temporary(attempt, self.retry,
                                   f"push to {self.safe_url} ({self.branch})", PUSH_RETRY_HINT)
        except RetriesExhaustedError:
            # the remote may still be away: the copy stays marked dirty and is synced next use
            with contextlib.suppress(GitError):
                self._sync(copy, full=True)
            raise

    def read(self, reader: Callable[[Path], T]) -> T:
        """Sync the working copy and let ``reader`` look at it (read-only) under the lock."""
        with self._locked_copy() as copy:
            self._sync(copy)
            return reader(copy.root)

    def read_newest(self, reader: Callable[[Snapshot], T]) -> T:
        """Let ``reader`` look at the remote branch's newest commit (its files, its history)
        without the working copy's lock: a reader never waits for a writer's commit and push
        (envforge/git/snapshot.py). The first use makes the cached copy under the lock."""
        copy = WorkingCopy(self.workdir, dict(self.git_env), self.safe_url)
        if not (self.workdir / ".git").is_dir():
            with self._locked_copy():
                pass  # cloned (or rebuilt) by the writers' path
        try:
            return read_newest(copy, self.branch, self._read_lock_file, self.lock_timeout,
                               reader)
        except GitError as e:
            if "is not a clean working copy" not in str(e):
                raise
            with self._locked_copy():  # rebuilt there, as a writer would
                pass
            return read_newest(copy, self.branch, self._read_lock_file, self.lock_timeout,
                               reader)

    def undo(self, commit: str, message: str) -> str:
        """Take back a published commit: drop it if it is still the branch head (no-one built
        on it), otherwise push a revert. Returns how it was undone; then ``after_push``."""
        how = self._undo(commit, message)
        if self.after_push is not None:
            self.after_push(commit, None)
        return how

    def _undo(self, commit: str, message: str) -> str:
        with self._locked_copy() as copy:

            def attempt(_: int) -> str:
                self._sync(copy, full=True)
                head = copy.head()
                self._mark_dirty(copy)
                try:
                    parents = copy.git("log", "-1", "--format=%P", commit).split()
                except GitError as e:
                    raise GitError(f"could not undo commit {commit[:12]}: {_reason(e)}") from e
                # Drop the commit if nobody built on it. A branch's first commit cannot be
                # dropped (remotes refuse to delete their default branch): revert it.
                if head == commit and parents:
                    self._push(
                        copy,
                        f"{parents[0]}:refs/heads/{self.branch}",
                        f"--force-with-lease=refs/heads/{self.branch}:{commit}",
                    )
                    self._sync(copy)
                    return "removed"
                try:
                    copy.git("revert", "--no-edit", commit, env=self._author_env())
                    copy.git("commit", "--amend", "--quiet", "-m", message,
                             env=self._author_env())
                except GitError as e:
                    raise GitError(f"could not undo commit {commit[:12]}: {_reason(e)}") from e
                self._push(copy, f"HEAD:refs/heads/{self.branch}")
                self._mark_clean(copy)
                return "reverted"

            return self._retrying(copy, attempt)

    # --- internals -------------------------------------------------------------------

    @contextmanager
    def _locked_copy(self) -> Iterator[WorkingCopy]:
        self._lock_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_file, "w") as lock:
            self._wait_for_lock(lock)
            try:
                yield self._open_copy()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _wait_for_lock(self, lock: IO[str]) -> None:
        """Take the cache lock; say once what is waited for, give up after ``lock_timeout``."""
        started = time.monotonic()
        announced = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= self.lock_timeout:
                    raise GitLockTimeoutError(
                        f"gave up after {self.lock_timeout:.0f}s waiting for the git cache lock "
                        f"{self._lock_file} of {self.safe_url} (another envforge command is "
                        "publishing to it): retry when it has finished, or raise "
                        f"{LOCK_TIMEOUT_ENV}") from None
                if not announced and waited >= min(2.0, self.lock_timeout / 2):
                    # a warning, so a CLI user sees why nothing happens (short waits stay quiet)
                    logger.warning("waiting for the git cache lock %s of %s: another envforge "
                                   "command is using it (giving up after %.0fs)",
                                   self._lock_file, self.safe_url, self.lock_timeout)
                    announced = True
                time.sleep(min(0.05, max(0.0, self.lock_timeout - waited)))

    def _open_copy(self) -> WorkingCopy:
        """The cached copy, checked by the git boundary (rebuilt when it is not a plain
        working copy of the remote, e.g. a replaced .git); every git process it starts runs
        without hooks or repository-supplied programs."""
        copy = open_working_copy(self.workdir, self.url, self.git_env, self.safe_url)
        if copy.git("config", "--local", "--get", "core.splitIndex", check=False):
            return copy
        # A split index writes only what changed instead of the whole index on every add and
        # commit, so a change costs about the same in a repository of thousands of files.
        copy.git("config", "--local", "core.splitIndex", "true")
        copy.git("config", "--local", "index.version", "4")
        return copy

    def _sync(self, copy: WorkingCopy, full: bool = False) -> None:
        """Make the working copy exactly the remote branch (or empty if it has none yet).

        The expensive part (reset and clean over the whole tree) is skipped when the copy is
        already at the remote head and was left clean by the last operation (no dirty marker).
        """
        try:
            copy.git("fetch", "--quiet", "--prune", "origin")
            remote_ref = f"refs/remotes/origin/{self.branch}"
            remote = copy.git("rev-parse", "--verify", "--quiet", remote_ref, check=False)
            dirty = full or self._dirty_marker(copy).exists()
            if remote:
                if not dirty and copy.head() == remote and copy.branch() == self.branch:
                    return
                # --force -B: branch, index and tracked files become the remote's (= reset --hard)
                copy.git("checkout", "--quiet", "--force", "-B", self.branch, remote_ref)
            else:  # the remote has no such branch yet: start from an empty, unborn branch
                copy.git("symbolic-ref", "HEAD", f"refs/heads/{self.branch}")
                copy.git("update-ref", "-d", f"refs/heads/{self.branch}", check=False)
                copy.git("read-tree", "--empty")
            if dirty or not remote:
                copy.git("clean", "-q", "-f", "-d", "-x")
            self._mark_clean(copy)
        except GitError as e:
            raise GitError(f"could not fetch {self.safe_url}: {_reason(e)}") from e

    def _stage(self, copy: WorkingCopy, parent: str | None, paths: Sequence[str]) -> list[str]:
        """Stage additions, changes and removals under ``paths`` only; return what changed."""
        root = copy.root
        present = [p for p in paths if (root / p).exists()]
        missing = [p for p in paths if not (root / p).exists()]
        if present:
            copy.git("add", "--all", "--", *present)
        if missing:
            copy.git("rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *missing)
        if parent is None:  # first commit of the branch: everything in the index is new
            return [f for f in copy.git("ls-files").splitlines() if f]
        out = copy.git("diff", "--cached", "--name-only", parent, "--", *paths)
        return [f for f in out.splitlines() if f]

    def _commit_index(self, copy: WorkingCopy, parent: str | None, message: str) -> str:
        """Commit the index with plumbing (write-tree, commit-tree, update-ref): the same
        commit as ``git commit``, without refreshing the whole index (which grows with the
        repository) or running hooks. Returns the commit."""
        tree = copy.git("write-tree")
        parents = ["-p", parent] if parent else []
        commit = copy.git("commit-tree", tree, *parents, "-m", message, env=self._author_env())
        copy.git("update-ref", f"refs/heads/{self.branch}", commit)
        return commit

    def _dirty_marker(self, copy: WorkingCopy) -> Path:
        return copy.git_dir / "envforge-dirty"

    def _mark_dirty(self, copy: WorkingCopy) -> None:
        self._dirty_marker(copy).touch()

    def _mark_clean(self, copy: WorkingCopy) -> None:
        self._dirty_marker(copy).unlink(missing_ok=True)

    def _push(self, copy: WorkingCopy, refspec: str, *options: str) -> None:
        try:
            copy.git("push", "--porcelain", *options, "origin", refspec)
        except GitError as e:
            if isinstance(e, GitUnreachableError):
                raise  # the network, not the remote's answer: temporary, retried by the caller
            text = e.output
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


def _reason(e: GitError) -> str:
    """What git printed, on one line (credentials in URLs already masked by the boundary)."""
    return " ".join((e.output or str(e)).replace("'", "").split())[:500]


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
