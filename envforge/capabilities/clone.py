"""A git clone of a repository a template names, within a byte, entry and time budget that is
enforced while git runs, not checked afterwards.

A template can name any repository (fetch:plain/fetch:template of a Git URL, the target of
publish:github:pull-request). Checked after the fact, a clone of a 20 GB pack or of a tree of
a million files would already have filled the disk. So the clone is done in three watched
stages, each a git process under the git boundary (no hooks, no config) in its own process
group, killed the moment it goes over:

1. ``git clone --no-checkout --depth 1 --no-tags --single-branch``: the bytes under ``.git``
   (the pack being received) are measured every few milliseconds; over ``max_bytes``, or
   past the deadline, git is killed.
2. ``git ls-tree -r -l`` of the commit, read as it streams: more than ``max_entries``
   entries, or blobs adding up to more than ``max_bytes``, and nothing is checked out.
3. ``git reset --hard``: the checkout itself, within what is left of the deadline.

Whatever stage stops it, the destination is removed: nothing is left in a cache. Errors are
one line naming ``what`` (e.g. "url '...': git clone"), the budget and the setting that
raises it.
No ``--filter``: a partial clone fetches missing blobs lazily at checkout, past the watch.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from envforge.capabilities.budgets import CloneBudget
from envforge.core.git_boundary import is_transient_failure, subprocess_env
from envforge.errors import BudgetExceededError, FileRefusedError, GitError, GitUnreachableError

#: How often the clone's size is measured while git runs.
POLL_SECONDS = 0.02
#: Longest file name and path a checkout can write here (Linux's NAME_MAX and PATH_MAX).
NAME_MAX = 255
PATH_MAX = 4096


def clone_within_budget(url: str, dest: Path, ref: str = "", *, budget: CloneBudget,
                        what: str, extra_config: Sequence[tuple[str, str]] = (),
                        extra_env: Mapping[str, str] | None = None,
                        secrets: Sequence[str] = (), keep_git: bool = False) -> None:
    """Clone ``url`` (its ``ref``, default branch when empty) into ``dest`` (which must not
    exist) within ``budget``; ``.git`` is removed unless ``keep_git``. BudgetExceededError or
    GitError, one line, and no ``dest`` left, when it cannot."""
    deadline = time.monotonic() + budget.seconds
    env = subprocess_env(extra_env, extra_config)
    try:
        cmd = ["git", "clone", "--quiet", "--no-checkout", "--depth", "1", "--no-tags",
               "--single-branch"]
        if ref:
            cmd += ["--branch", ref]
        _watched([*cmd, "--", url, str(dest)], env, None, deadline, budget, what, secrets,
                 measure=dest / ".git")
        _check_tree(dest, env, deadline, budget, what, secrets)
        _watched(["git", "reset", "--quiet", "--hard", "HEAD"], env, dest, deadline, budget,
                 what, secrets, measure=None)
        if not keep_git:
            shutil.rmtree(dest / ".git")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _watched(cmd: list[str], env: Mapping[str, str], cwd: Path | None, deadline: float,
             budget: CloneBudget, what: str, secrets: Sequence[str],
             measure: Path | None) -> None:
    """Run ``cmd``, killing its process group when ``measure`` grows past the byte budget or
    the deadline passes."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(cmd, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=errors,
                                   start_new_session=True)
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise _over(what, f"it took longer than {budget.seconds:g} s",
                                budget.settings[2])
                if measure is not None and _size(measure) > budget.max_bytes:
                    raise _over(what, f"the transfer passed {budget.max_bytes:,} bytes",
                                budget.settings[0])
                time.sleep(POLL_SECONDS)
        finally:
            _kill(process)
        if process.returncode != 0:
            errors.seek(0)
            output = errors.read()
            # a network failure is temporary (the caller's retry policy may run it again)
            kind = (GitUnreachableError
                    if is_transient_failure(output.decode("utf-8", "replace")) else GitError)
            raise kind(f"{what} failed: {_last_line(output, secrets)}")


def _check_tree(dest: Path, env: Mapping[str, str], deadline: float, budget: CloneBudget,
                what: str, secrets: Sequence[str]) -> None:
    """Count the commit's entries and add up its blob sizes as ``git ls-tree`` streams them;
    over either budget, stop before anything is checked out."""
    process = subprocess.Popen(["git", "ls-tree", "-r", "-l", "-z", "--full-tree", "HEAD"],
                               cwd=dest, env=dict(env), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    assert process.stdout is not None
    entries = total = 0
    pending = b""
    try:
        while chunk := process.stdout.read(65536):
            if time.monotonic() > deadline:
                raise _over(what, f"it took longer than {budget.seconds:g} s",
                            budget.settings[2])
            records = (pending + chunk).split(b"\0")
            pending = records.pop()
            for record in records:
                entries += 1
                head, _, path = record.partition(b"\t")
                size = head.split()[-1] if head.split() else b""
                total += int(size) if size.isdigit() else 0
                _check_name(path, what)
            if entries > budget.max_entries:
                raise _over(what, f"its tree holds more than {budget.max_entries:,} files",
                            budget.settings[1])
            if total > budget.max_bytes:
                raise _over(what, f"its files add up to more than {budget.max_bytes:,} bytes",
                            budget.settings[0])
        process.wait()
    finally:
        process.stdout.close()
        _kill(process)
    if process.returncode != 0:
        raise GitError(f"{what} failed: git could not list the commit's files")


def _check_name(path: bytes, what: str) -> None:
    """A name no file system here can hold (a component over 255 bytes, a path over 4096)
    is refused by name before the checkout fails on it with git's vague last line."""
    longest = max(path.split(b"/"), key=len)
    if len(longest) > NAME_MAX or len(path) > PATH_MAX:
        shown = longest[:40].decode("utf-8", "replace")
        raise FileRefusedError(
            f"{what} stopped: the repository holds a file named {shown!r}... "
            f"({len(longest)} bytes in one name, {len(path)} in its path; at most {NAME_MAX} "
            f"and {PATH_MAX}): rename it in the repository")


def _over(what: str, problem: str, setting: str) -> BudgetExceededError:
    return BudgetExceededError(f"{what} stopped: {problem} ({setting}; raise it if the "
                               "repository is meant to be this big)")


def _size(root: Path) -> int:
    """Bytes of the files under ``root`` (links not followed); files vanishing meanwhile,
    as git renames its temporary packs, are skipped."""
    total = 0
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as found:
                for entry in found:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _kill(process: subprocess.Popen[bytes]) -> None:
    """End git and any helper it started (remote-https, index-pack): its whole group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _last_line(stderr: bytes, secrets: Sequence[str]) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    # the line that says why: curl's reason when git adds its generic last line after it
    text = next((line for line in reversed(lines) if is_transient_failure(line)),
                lines[-1] if lines else "no output")
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:300]
