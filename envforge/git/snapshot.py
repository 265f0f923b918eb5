"""Reading the remote branch's newest commit without the working copy's lock.

:class:`~envforge.git.publishing.GitPublisher` keeps one working copy per repository and
branch, and every writer holds its lock for a whole sync-write-commit-push. A reader (does
this environment exist? every record for the fleet table; does Argo CD's revision contain
ours?) needs none of that: it needs the branch's newest commit. Here it fetches that commit into
a ref of its own (``refs/envforge/snapshot``, under a lock that only readers take, so a
reader waits for another reader's fetch, never for a writer's push) and reads it from Git's
object database, which git lets processes read while others fetch into it. Files are read
from a snapshot of the commit's tree: checked out once per commit (into
``<cache>/<key>.snapshots/<commit>``, made aside and renamed into place, so a reader never
sees half of one) and shared by every reader of that commit; links are checked out as plain
files holding the link's text, so nothing a repository holds is followed. Snapshots older
than :data:`SNAPSHOT_KEEP_SECONDS` are removed by later readers.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from envforge.core.git_boundary import WorkingCopy, check_working_copy, run_git
from envforge.errors import GitError, GitLockTimeoutError

T = TypeVar("T")
#: where readers fetch the branch to (never a branch or remote-tracking ref writers use)
SNAPSHOT_REF = "refs/envforge/snapshot"
#: a snapshot no reader made or used for this long is removed (a read takes seconds)
SNAPSHOT_KEEP_SECONDS = 600.0
#: git's own words when the remote has no such branch yet (an empty repository)
_NO_BRANCH = "couldn't find remote ref"


class Snapshot:
    """One commit of the branch as a reader sees it: ``commit`` (None: the branch does not
    exist yet), ``root`` (its files, read-only, checked out on first use) and :meth:`git` for
    read-only questions to the object database (``log``, ``merge-base``)."""

    def __init__(self, copy: WorkingCopy, commit: str | None, folder: Path) -> None:
        self.copy = copy
        self.commit = commit
        self._folder = folder
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        """The commit's files (an empty folder for an empty branch)."""
        if self._root is None:
            self._root = _checked_out(self.copy, self.commit, self._folder)
        return self._root

    def git(self, *args: str, what: str = "") -> str:
        """One read-only git command against the repository's objects (stdout)."""
        return run_git(["--git-dir", str(self.copy.git_dir), *args], cwd=self.copy.root,
                       extra_env=dict(self.copy.extra_env), what=what)

    def contains(self, later: str, earlier: str) -> bool:
        """Whether ``later`` is ``earlier`` or descends from it (False if either is unknown)."""
        return _succeeds(self.copy, "merge-base", "--is-ancestor", earlier, later)


def read_newest(copy: WorkingCopy, branch: str, lock_file: Path, lock_timeout: float,
                reader: Callable[[Snapshot], T]) -> T:
    """Fetch ``branch``'s newest commit into :data:`SNAPSHOT_REF` (readers' lock only) and
    let ``reader`` look at it. ``copy`` must exist; GitError when it is not a clean copy
    (the caller then takes the writers' path, which rebuilds it)."""
    problem = check_working_copy(copy.root, _origin(copy))
    if problem is not None:
        raise GitError(f"git cache {copy.root} is not a clean working copy ({problem})")
    with _reader_lock(lock_file, lock_timeout):
        commit = _fetch_newest(copy, branch)
    return reader(Snapshot(copy, commit, _snapshots_folder(copy)))


def _origin(copy: WorkingCopy) -> str:
    return run_git(["config", "--file", str(copy.git_dir / "config"), "--no-includes",
                    "--get", "remote.origin.url"], what="read the cached copy's remote")


def _fetch_newest(copy: WorkingCopy, branch: str) -> str | None:
    try:
        # --refmap= (empty): without it git also updates refs/remotes/origin/<branch>
        # ("opportunistic" update), the ref the writers' fetch and push move under their
        # lock, and one of two racing updates fails ("cannot lock ref")
        copy.git("fetch", "--quiet", "--no-write-fetch-head", "--no-tags", "--refmap=",
                 "origin", f"+refs/heads/{branch}:{SNAPSHOT_REF}", what=f"git fetch {branch}")
    except GitError as e:
        if _NO_BRANCH in (e.output or str(e)):
            return None
        raise
    return copy.git("rev-parse", "--verify", "--quiet", f"{SNAPSHOT_REF}^{{commit}}")


def _succeeds(copy: WorkingCopy, *args: str) -> bool:
    try:
        run_git(["--git-dir", str(copy.git_dir), *args], cwd=copy.root,
                extra_env=dict(copy.extra_env), what=f"git {args[0]}")
    except GitError as e:
        if "did not finish" in str(e):
            raise
        return False
    return True


@contextmanager
def _reader_lock(lock_file: Path, timeout: float) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as lock:
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started >= timeout:
                    raise GitLockTimeoutError(
                        f"gave up after {timeout:.0f}s waiting for the git readers' lock "
                        f"{lock_file} (another envforge command is fetching): retry when "
                        "it has finished, or raise ENVFORGE_GIT_LOCK_TIMEOUT") from None
                time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _snapshots_folder(copy: WorkingCopy) -> Path:
    return copy.root.parent / f"{copy.root.name}.snapshots"


def _checked_out(copy: WorkingCopy, commit: str | None, folder: Path) -> Path:
    """The snapshot of ``commit`` in ``folder``: reused when another reader made it."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (commit or "empty")
    if target.is_dir():
        os.utime(target)  # in use: not removed for another SNAPSHOT_KEEP_SECONDS
        return target
    _remove_old(folder, keep=target.name)
    work = Path(tempfile.mkdtemp(prefix=".making-", dir=folder))
    try:
        tree = work / "tree"
        tree.mkdir()
        if commit is not None:
            index = {"GIT_INDEX_FILE": str(work / "index"), **copy.extra_env}
            git_dir = ["--git-dir", str(copy.git_dir)]
            run_git([*git_dir, "read-tree", commit], cwd=copy.root, extra_env=index,
                    what="git read-tree")
            # a link in the repository becomes a file holding its text: never followed
            run_git([*git_dir, "--work-tree", str(tree), "checkout-index", "--all", "--force",
                     f"--prefix={tree}/"], cwd=tree, extra_env=index,
                    extra_config=[("core.symlinks", "false")], what="git checkout-index")
        try:
            tree.rename(target)
        except OSError:  # another reader renamed its copy of the same commit first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _remove_old(folder: Path, keep: str) -> None:
    """Remove snapshots unused for SNAPSHOT_KEEP_SECONDS (and abandoned half-made ones)."""
    cutoff = time.time() - SNAPSHOT_KEEP_SECONDS
    for entry in folder.iterdir():
        if entry.name == keep:
            continue
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except FileNotFoundError:
            continue
