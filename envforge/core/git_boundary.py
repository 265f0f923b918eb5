"""The git boundary: every git command envforge runs goes through here, and none of them runs
code that a repository, a template or the machine's git configuration brought along.

How (every git process, GitPython's included, gets :func:`safe_git_env`):

- ``GIT_CONFIG_NOSYSTEM=1``, ``GIT_CONFIG_GLOBAL=/dev/null``: no system or user config, so no
  ``include``, alias, filter driver, credential helper or fsmonitor from there.
- ``GIT_CONFIG_COUNT``/``KEY_n``/``VALUE_n`` (git >= 2.31, the environment form of ``-c``, which
  wins over every config file): ``core.hooksPath=/dev/null`` (no hook ever runs),
  ``core.fsmonitor=false``, ``credential.helper=`` (empties the list), no GPG signing, no
  attributes file, and only the file, http(s) and ssh transports (``ext::`` runs a command).
- ``GIT_TERMINAL_PROMPT=0``, ``GIT_ASKPASS``/``GIT_SSH_COMMAND`` only as envforge sets them.

Every git process envforge starts is :func:`run_git` (a subprocess: the environment above, a
timeout, one GitError with git's last line, credentials masked; a failure whose output says
the network failed, :func:`is_transient_failure`, is a temporary GitUnreachableError that the
caller's envforge.core.retry policy may retry, while auth, permission and not-found stay
permanent); a cached working copy is a
:class:`WorkingCopy` whose commands go through it. The one exception is the image area's
read of a mirror's tree objects (envforge.images.source), which still uses GitPython through
:func:`open_repo` / :func:`clone` here, with the same environment and a timeout per command.

A working copy's own ``.git/config`` cannot be overridden key by key (``include.path``, a
``filter.<x>.clean`` or ``core.worktree`` there would still apply), so :func:`check_working_copy`
reads it without includes and refuses anything envforge did not put there;
:func:`open_working_copy` then rebuilds the copy from the remote instead of using it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git

from envforge.errors import GitError, GitUnreachableError

logger = logging.getLogger("envforge.git")

#: Seconds one git command may take before it is killed (a hung remote, a stuck lock).
GIT_TIMEOUT_SECONDS = 300.0

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact_url(text: str) -> str:
    """Replace ``user:token@`` in every URL inside ``text`` with ``***@``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)

#: Settings forced on every git command (the environment form of ``git -c``).
SAFE_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.attributesFile", "/dev/null"),
    ("core.sshCommand", "ssh -o BatchMode=yes"),
    ("credential.helper", ""),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("protocol.allow", "never"),
    ("protocol.file.allow", "always"),
    ("protocol.http.allow", "always"),
    ("protocol.https.allow", "always"),
    ("protocol.ssh.allow", "always"),
    ("protocol.ext.allow", "never"),
    ("submodule.recurse", "false"),
)

_SAFE_KEYS = frozenset(key.lower() for key, _ in SAFE_CONFIG)

#: Keys a cached working copy's ``.git/config`` may hold (lower-case, as ``git config -l``
#: prints them); ``branch.<name>.*`` and ``remote.origin.*`` are checked separately.
_ALLOWED_KEYS = frozenset({
    "core.repositoryformatversion", "core.filemode", "core.bare", "core.logallrefupdates",
    "core.splitindex", "core.symlinks", "core.ignorecase", "core.precomposeunicode",
    "index.version",
})
_ALLOWED_REMOTE_KEYS = frozenset({"remote.origin.url", "remote.origin.fetch"})
_ALLOWED_BRANCH_SUFFIXES = (".remote", ".merge")


def safe_git_env(extra: Mapping[str, str] | None = None,
                 extra_config: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """Environment variables for one git process: the safe overrides, then ``extra``
    (credentials helpers envforge wrote itself) and ``extra_config`` (more ``-c`` settings,
    e.g. ``http.extraHeader``; they can tighten the safe ones, never loosen them). Variables
    that would switch the overrides off (``GIT_CONFIG*``) are never taken from ``extra``."""
    env: dict[str, str] = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_PROTOCOL_FROM_USER": "0",
    }
    # Later wins: an extra setting may add (http.extraHeader) or tighten (protocol.file.allow
    # never), never loosen one of the safe ones.
    settings = [*SAFE_CONFIG, *((k, v) for k, v in extra_config
                                if k.lower() not in _SAFE_KEYS or v in ("never", "false"))]
    env["GIT_CONFIG_COUNT"] = str(len(settings))
    for index, (key, value) in enumerate(settings):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    for name, value in (extra or {}).items():
        if name.startswith("GIT_CONFIG"):
            continue  # never let a caller switch the overrides off
        env[name] = value
    return env


def subprocess_env(extra: Mapping[str, str] | None = None,
                   extra_config: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """A full environment for ``subprocess.run(["git", ...])``: the process's own, without
    any inherited ``GIT_*`` variable, plus :func:`safe_git_env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {**base, **safe_git_env(extra, extra_config)}


#: what git (and curl under it) prints when the network, not the request, failed
_TRANSIENT = re.compile(
    r"connection refused|couldn't connect to server|failed to connect to|connection reset"
    r"|connection timed out|operation timed out|timed out after|could not resolve host"
    r"|temporary failure in name resolution|network is unreachable|no route to host"
    r"|the remote end hung up unexpectedly|early eof|unexpected disconnect"
    r"|transfer closed with outstanding read data|empty reply from server"
    r"|recv failure|send failure|ssl_read|gnutls recv error|http/2 stream \d+ was not closed"
    r"|returned error: 5\d\d|http 5\d\d|rpc failed; curl (?:7|18|28|52|55|56)\b",
    re.IGNORECASE)
#: what it prints when the answer is "no": never retried, whatever else it says
_PERMANENT = re.compile(
    r"authentication failed|returned error: 4\d\d|http 4\d\d|permission denied"
    r"|repository not found|not found|could not read (?:username|password)"
    r"|does not appear to be a git repository|access denied|forbidden|unauthorized"
    r"|host key verification failed|couldn't find remote ref|invalid username or password",
    re.IGNORECASE)


def is_transient_failure(output: str) -> bool:
    """Whether git's ``output`` says the remote could not be reached (refused, reset, timed
    out, a 5xx, a dropped transfer), so the same command may succeed later. An answer that
    refuses (auth, permission, not found) is permanent even if a network line comes with it;
    git's generic "Could not read from remote repository" alone decides nothing (GitHub over
    ssh prints it for a missing repository too)."""
    return bool(_TRANSIENT.search(output)) and not _PERMANENT.search(output)


def run_git(args: list[str], *, cwd: Path | None = None, stdin: str | None = None,
            extra_env: Mapping[str, str] | None = None,
            extra_config: Sequence[tuple[str, str]] = (),
            timeout: float = GIT_TIMEOUT_SECONDS, secrets: Sequence[str] = (),
            what: str = "", check: bool = True) -> str:
    """Run one git command under the boundary; its stdout, stripped (``strip=False``: as is).

    GitError on failure (unless ``check`` is False: then the stdout of a failed command too),
    naming ``what`` (or the command) with git's last line, ``secrets`` and URL credentials
    masked; its ``output`` holds all git printed, masked the same way. A failure of the
    network (:func:`is_transient_failure`) is the temporary GitUnreachableError instead."""
    label = what or f"git {args[0]}"
    done = _run(args, cwd, stdin, extra_env, extra_config, timeout, label)
    if done.returncode != 0 and check:

        def masked(text: str) -> str:
            for secret in secrets:
                if secret:
                    text = text.replace(secret, "***")
            return redact_url(text)

        lines = (done.stderr or "").strip().splitlines()
        # the line that says why: curl's reason when git adds its generic last line after it
        reason = next((line for line in reversed(lines) if is_transient_failure(line)),
                      lines[-1] if lines else "no output")
        kind = GitUnreachableError if is_transient_failure(done.stderr or "") else GitError
        error = kind(f"{label} failed: {masked(reason)[:300]}")
        error.output = masked(f"{done.stderr or ''}\n{done.stdout or ''}")
        raise error
    stdout: str = done.stdout or ""
    return stdout.strip()


def git_succeeds(args: list[str], *, cwd: Path | None = None,
                 timeout: float = GIT_TIMEOUT_SECONDS) -> bool:
    """Whether a git command that answers with its exit status (``merge-base --is-ancestor``,
    ``rev-parse --verify``) says yes; GitError only when it does not finish in time."""
    return _run(args, cwd, None, None, (), timeout, f"git {args[0]}").returncode == 0


def _run(args: list[str], cwd: Path | None, stdin: str | None,
         extra_env: Mapping[str, str] | None, extra_config: Sequence[tuple[str, str]],
         timeout: float, label: str) -> subprocess.CompletedProcess[str]:
    """The one place a git process starts: the boundary's environment, no stdin unless given
    (git never waits on the caller's terminal), killed after ``timeout``."""
    feed: dict[str, Any] = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    try:
        done: subprocess.CompletedProcess[str] = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True,
            env=subprocess_env(extra_env, extra_config), check=False, timeout=timeout, **feed)
    except subprocess.TimeoutExpired as e:
        raise GitError(f"{label} did not finish in {timeout:g} s") from e
    return done


@dataclass(frozen=True)
class WorkingCopy:
    """A working copy (a cached clone) whose every git command runs under the boundary:
    :meth:`git` is :func:`run_git` in ``root`` with ``extra_env`` (credential helpers)."""

    root: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: how messages name the remote (no credentials)
    describe: str = "the repository"

    @property
    def git_dir(self) -> Path:
        return self.root / ".git"

    def git(self, *args: str, env: Mapping[str, str] | None = None, check: bool = True,
            what: str = "") -> str:
        """One git command in the working copy; its stdout (see :func:`run_git`)."""
        return run_git(list(args), cwd=self.root, extra_env={**self.extra_env, **(env or {})},
                       check=check, what=what)

    def head(self) -> str | None:
        """The commit HEAD points at, or None on an unborn branch."""
        return self.git("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False) or None

    def branch(self) -> str | None:
        """The checked-out branch, or None when HEAD is detached."""
        return self.git("symbolic-ref", "--quiet", "--short", "HEAD", check=False) or None


def header_for(origin: str, header: str) -> list[tuple[str, str]]:
    """git settings that send ``header`` to ``origin`` only (``http.<url>.extraHeader`` is
    matched by git against each request's URL) and follow no redirect, so a credential
    never reaches another host."""
    return [(f"http.{origin.rstrip('/')}/.extraHeader", header),
            ("http.followRedirects", "false")]


def export_tree(url: str, dest: Path, ref: str = "", *,
                extra_config: Sequence[tuple[str, str]] = (), timeout: float = 120,
                secrets: Sequence[str] = (), what: str = "") -> None:
    """The files of ``url`` at ``ref`` (default branch) in ``dest``, without ``.git``: a
    shallow clone under the boundary whose metadata is then removed."""
    cmd = ["clone", "--quiet", "--depth", "1", "--no-tags", "--single-branch"]
    if ref:
        cmd += ["--branch", ref]
    run_git([*cmd, "--", url, str(dest)], extra_config=extra_config, timeout=timeout,
            secrets=secrets, what=what or f"git clone of {url}")
    _remove(dest / ".git")


class _BoundedGit(git.cmd.Git):
    """GitPython's command runner with the boundary's timeout on every command."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("kill_after_timeout", GIT_TIMEOUT_SECONDS)
        return super().execute(*args, **kwargs)


class _BoundedRepo(git.Repo):
    """A GitPython Repo whose git commands are :class:`_BoundedGit` (GitPython's documented
    hook for its command wrapper)."""

    GitCommandWrapperType = _BoundedGit


def open_repo(path: Path, extra_env: Mapping[str, str] | None = None) -> git.Repo:
    """A GitPython Repo whose every git process runs under the boundary (environment and
    timeout); for reading a mirror's objects (envforge.images.source)."""
    repo = _BoundedRepo(path)
    _apply(repo, extra_env)
    return repo


def clone(url: str, path: Path, extra_env: Mapping[str, str] | None = None,
          **options: object) -> git.Repo:
    """``git clone`` under the boundary (``options`` as for ``Repo.clone_from``)."""
    env = safe_git_env(extra_env)
    repo = _BoundedRepo.clone_from(url, path, env=env, **options)  # type: ignore[arg-type]
    _apply(repo, extra_env)
    return repo


def _apply(repo: git.Repo, extra_env: Mapping[str, str] | None) -> None:
    repo.git.update_environment(**safe_git_env(extra_env))


def check_working_copy(path: Path, url: str) -> str | None:
    """Why ``path`` is not a plain working copy of ``url`` that envforge made, or None.

    Reads ``.git/config`` itself (``--no-includes``, under the boundary) and refuses any key
    envforge does not set: an ``include``, a filter driver, ``core.worktree``, an alias or a
    hook path would otherwise take effect in the next command."""
    dot_git = path / ".git"
    if dot_git.is_symlink() or not dot_git.is_dir():
        return ".git is not a directory"
    config = dot_git / "config"
    if config.is_symlink() or not config.is_file():
        return ".git/config is missing"
    for extra in ("config.worktree", "commondir"):
        if (dot_git / extra).exists():
            return f".git/{extra} exists"
    try:
        listing = run_git(["config", "--file", str(config), "--no-includes", "--list", "-z"])
    except GitError:
        return ".git/config does not parse"
    origin = None
    for entry in filter(None, listing.split("\0")):
        key, _, value = entry.partition("\n")
        key = key.lower()
        if key == "remote.origin.url":
            origin = value
        elif key == "core.bare" and value.lower() not in ("false", "0", "no", "off"):
            return "the copy is bare"
        if key in _ALLOWED_KEYS or key in _ALLOWED_REMOTE_KEYS:
            continue
        if key.startswith("branch.") and key.endswith(_ALLOWED_BRANCH_SUFFIXES):
            continue
        return f".git/config sets {key}, which envforge never sets"
    if origin != url:
        return "its origin is not the configured remote"
    return None


def open_working_copy(path: Path, url: str, extra_env: Mapping[str, str] | None = None,
                      describe: str | None = None) -> WorkingCopy:
    """The cached working copy of ``url`` at ``path``; cloned afresh when missing, and
    rebuilt (logged, with the reason) when it is not a plain copy of ``url``."""
    shown = describe or "the repository"
    copy = WorkingCopy(path, dict(extra_env or {}), shown)
    if path.exists() or path.is_symlink():
        problem = check_working_copy(path, url)
        if problem is None:
            return copy
        logger.warning("git cache %s of %s is not a clean working copy (%s): rebuilding it",
                       path, shown, problem)
        _remove(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_git(["clone", "--quiet", "--", url, str(path)], extra_env=extra_env)
    except GitError as e:
        _remove(path)
        last = e.output.strip().splitlines()[-1:] or ["no output"]
        raise GitError(f"could not clone {shown}: {last[0][:300]}") from e
    return copy


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
