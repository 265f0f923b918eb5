"""Application source at a Git ref: a bare mirror cache per repository, a worktree per build.

The first request for a repository clones it with ``--mirror`` (every branch, tag and
``refs/pull/N/head``) into the cache; later requests fetch into that mirror, which moves only
new objects. A ref is resolved to a commit there, the files the Dockerfile decision needs are
read straight from the commit (no checkout), and only a real build gets a detached worktree,
removed afterwards. Credentials come from :class:`GitAuth` and never appear in a URL or log.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import git

from envforge.core.git_boundary import clone, open_repo, safe_git_env
from envforge.errors import ImageSourceError, RefNotFoundError, SourceUnreachableError
from envforge.git.publishing import redact_url
from envforge.images.git_auth import GitAuth, git_environment

_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]+:[^/@]*@", re.IGNORECASE)
_HEX = re.compile(r"^[0-9a-f]{7,40}$")
_PULL = re.compile(r"^(?:refs/)?pull/(\d+)(?:/head)?$")


@dataclass(frozen=True)
class ResolvedSource:
    """A ref resolved to a commit in the mirror of ``url``."""

    url: str
    ref: str
    commit: str
    ref_name: str  # the full ref it matched, or the commit itself
    mirror: Path
    fetch_seconds: float

    @property
    def short_commit(self) -> str:
        return self.commit[:12]


def ref_candidates(ref: str) -> list[str]:
    """Full ref names a user-given ref may mean, most specific first."""
    if pull := _PULL.match(ref):
        return [f"refs/pull/{pull.group(1)}/head"]
    if ref.startswith("refs/"):
        return [ref]
    return [f"refs/heads/{ref}", f"refs/tags/{ref}"]


class GitTreeView:
    """Read-only view of the files of one commit, read from the mirror without a checkout."""

    def __init__(self, commit: git.Commit) -> None:
        self._tree = commit.tree

    def _object(self, path: str) -> git.objects.base.IndexObject | None:
        rel = str(PurePosixPath(path))
        if rel in ("", "."):
            return self._tree
        try:
            obj: git.objects.base.IndexObject = self._tree / rel
        except KeyError:
            return None
        return obj

    def is_file(self, path: str) -> bool:
        obj = self._object(path)
        return obj is not None and obj.type == "blob"

    def read_text(self, path: str) -> str:
        obj = self._object(path)
        if obj is None or obj.type != "blob":
            raise FileNotFoundError(path)
        data: bytes = obj.data_stream.read()
        return data.decode("utf-8", errors="replace")

    def names(self, directory: str = ".") -> set[str]:
        obj = self._object(directory)
        if obj is None or obj.type != "tree":
            return set()
        return {child.name for child in obj}


class GitSourceCache:
    """Mirrors of application repositories under ``root`` (one bare mirror per URL)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mirror_dir(self, url: str, identity: str = "") -> Path:
        """The mirror of ``url`` fetched with the credentials called ``identity`` ("" for
        none): one per URL *and* credentials, so a run without a private repository's
        credentials never reads what another run fetched with them."""
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])[:40]
        digest = hashlib.sha256(f"{url}\0{identity}".encode()).hexdigest()[:12]
        return self.root / "mirrors" / f"{name.removesuffix('.git')}-{digest}.git"

    @contextmanager
    def _locked(self, mirror: Path) -> Iterator[None]:
        """One process at a time changes a mirror (clone, fetch, worktree add/remove)."""
        mirror.parent.mkdir(parents=True, exist_ok=True)
        with open(mirror.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def resolve(self, url: str, ref: str, auth: GitAuth | None = None) -> ResolvedSource:
        """Bring the mirror of ``url`` up to date (when needed) and resolve ``ref`` in it."""
        if _URL_PASSWORD.match(url):
            raise ImageSourceError(
                f"repository URL {redact_url(url)} carries a password: remove it and put the "
                "credentials in a GitCredentials block")
        if not ref.strip():
            raise RefNotFoundError(f"repository {redact_url(url)}: the ref is empty; give a "
                                   "branch, tag, pull/N/head or commit")
        mirror = self.mirror_dir(url, auth.identity if auth is not None else "")
        started = time.perf_counter()
        with self._locked(mirror), git_environment(auth) as env:
            if not (mirror / "HEAD").exists():
                self._clone(url, mirror, env)
                fetched = True
            else:
                fetched = False
            repo = open_repo(mirror)
            try:
                # A commit already in the mirror cannot change; branches, tags and pull
                # request heads can move, so for them the remote's current state is fetched.
                commit = self._lookup(repo, ref) if _HEX.match(ref) or fetched else None
                if commit is None and not fetched:
                    self._fetch(url, repo, env)
                    commit = self._lookup(repo, ref)
                if commit is None:
                    raise RefNotFoundError(self._not_found_message(repo, url, ref))
            finally:
                repo.close()
        return ResolvedSource(url=url, ref=ref, commit=commit[1], ref_name=commit[0],
                              mirror=mirror, fetch_seconds=time.perf_counter() - started)

    @contextmanager
    def open_tree(self, source: ResolvedSource) -> Iterator[GitTreeView]:
        """The files of the resolved commit, read from the mirror."""
        repo = open_repo(source.mirror)
        try:
            yield GitTreeView(repo.commit(source.commit))
        finally:
            repo.close()

    @contextmanager
    def worktree(self, source: ResolvedSource, parent: Path) -> Iterator[Path]:
        """A detached checkout of the resolved commit under ``parent``, removed on exit."""
        parent.mkdir(parents=True, exist_ok=True)
        path = parent / f"src-{source.short_commit}-{time.monotonic_ns()}"
        with self._locked(source.mirror):
            repo = open_repo(source.mirror)
            try:
                repo.git.worktree("add", "--detach", "--force", str(path), source.commit)
            except git.GitCommandError as e:
                raise ImageSourceError(
                    f"cannot check out {source.short_commit} of {redact_url(source.url)}: "
                    f"{_last_line(e)}") from e
            finally:
                repo.close()
        # The build context gets the files only: the worktree's .git pointer would leak the
        # cache path into the image (``worktree prune`` drops its bookkeeping afterwards).
        (path / ".git").unlink(missing_ok=True)
        try:
            yield path
        finally:
            with self._locked(source.mirror):
                shutil.rmtree(path, ignore_errors=True)
                repo = open_repo(source.mirror)
                try:
                    repo.git.worktree("prune")
                finally:
                    repo.close()

    # --- git plumbing -------------------------------------------------------------------------

    def _clone(self, url: str, mirror: Path, env: dict[str, str]) -> None:
        try:
            clone(url, mirror, env, mirror=True)
        except git.GitCommandError as e:
            shutil.rmtree(mirror, ignore_errors=True)  # no half-made mirror left behind
            raise SourceUnreachableError(
                f"cannot clone {redact_url(url)}: {_last_line(e)}; check the URL, that the "
                "server is reachable, and the GitCredentials block") from e

    def _fetch(self, url: str, repo: git.Repo, env: dict[str, str]) -> None:
        try:
            repo.git.fetch("--prune", "--quiet", "origin", env=safe_git_env(env))
        except git.GitCommandError as e:
            raise SourceUnreachableError(
                f"cannot fetch {redact_url(url)}: {_last_line(e)}; check that the server is "
                "reachable and the GitCredentials block") from e

    @staticmethod
    def _lookup(repo: git.Repo, ref: str) -> tuple[str, str] | None:
        """(full ref name, commit) for ``ref``, or None if the mirror does not have it."""
        candidates = ref_candidates(ref)
        if _HEX.match(ref):
            candidates.append(ref)
        for candidate in candidates:
            try:
                sha = repo.git.rev_parse("--verify", "--quiet", f"{candidate}^{{commit}}")
            except git.GitCommandError:
                continue
            if sha:
                return (candidate if candidate != ref or ref.startswith("refs/") else sha,
                        sha)
        return None

    @staticmethod
    def _not_found_message(repo: git.Repo, url: str, ref: str) -> str:
        def names(prefix: str) -> str:
            out = repo.git.for_each_ref("--count=10", "--format=%(refname:lstrip=2)", prefix)
            return ", ".join(out.split()) or "none"
        return (f"repository {redact_url(url)} has no branch, tag, pull request head or commit "
                f"{ref!r} (branches: {names('refs/heads')}; tags: {names('refs/tags')}); "
                "check the ref, or push it first")


def _last_line(error: git.GitCommandError) -> str:
    text = str(error.stderr or error).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[-1] if lines else "git failed"
    return redact_url(line.removeprefix("stderr: ").strip("'"))
