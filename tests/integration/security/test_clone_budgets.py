"""Hostile repositories a template names: a huge pack, a commit of many files, a server that
never answers. The clone is stopped while git runs (envforge.capabilities.clone), the error
is one line naming the budget and its setting, and nothing is left in the fetch cache or the
workspace. Real git over smart HTTP (git http-backend) on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.actions.fetch import FetchPlain, FetchPlainInput
from envforge.capabilities.budgets import CloneBudget
from envforge.capabilities.clone import clone_within_budget
from envforge.errors import BudgetExceededError, TemplateError
from tests.git_http import GitHttpServer
from tests.unit.actions.helpers import context_with_settings

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def _bare_from(work: Path, served: Path, name: str) -> None:
    subprocess.run([*GIT, "-C", str(work), "commit", "-qm", "x"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / name)], check=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bare repositories: huge.git (8 MB of incompressible data), many.git (30,000 files in
    one commit, made with git mktree), small.git (two files)."""
    root = tmp_path_factory.mktemp("served")
    work = root / "huge-work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "blob.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    subprocess.run(["git", "-C", str(work), "add", "."], check=True)
    _bare_from(work, root, "huge.git")

    work = root / "small-work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "a.txt").write_text("a\n")
    (work / "b.txt").write_text("b\n")
    subprocess.run(["git", "-C", str(work), "add", "."], check=True)
    _bare_from(work, root, "small.git")

    many = root / "many.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(many)], check=True)
    blob = subprocess.run(["git", "--git-dir", str(many), "hash-object", "-w", "--stdin"],
                          input=b"x\n", capture_output=True, check=True).stdout.decode().strip()
    listing = "".join(f"100644 blob {blob}\tf{i:05d}\n" for i in range(30_000))
    tree = subprocess.run(["git", "--git-dir", str(many), "mktree"], input=listing.encode(),
                          capture_output=True, check=True).stdout.decode().strip()
    commit = subprocess.run([*GIT, "--git-dir", str(many), "commit-tree", tree, "-m", "many"],
                            capture_output=True, check=True).stdout.decode().strip()
    subprocess.run(["git", "--git-dir", str(many), "update-ref", "refs/heads/main", commit],
                   check=True)
    long_name = root / "long.git"  # one file named with 300 bytes (git allows it, Linux not)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(long_name)], check=True)
    blob = subprocess.run(["git", "--git-dir", str(long_name), "hash-object", "-w", "--stdin"],
                          input=b"x\n", capture_output=True, check=True).stdout.decode().strip()
    tree = subprocess.run(["git", "--git-dir", str(long_name), "mktree"],
                          input=f"100644 blob {blob}\t{'a' * 300}\n".encode(),
                          capture_output=True, check=True).stdout.decode().strip()
    commit = subprocess.run([*GIT, "--git-dir", str(long_name), "commit-tree", tree, "-m", "l"],
                            capture_output=True, check=True).stdout.decode().strip()
    subprocess.run(["git", "--git-dir", str(long_name), "update-ref", "refs/heads/main",
                    commit], check=True)
    return root


@pytest.fixture
def server(served: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(served, "x-access-token", "unused", protect="push") as running:
        yield running


def _ctx(tmp_path: Path, **settings: str) -> ActionContext:
    return context_with_settings(tmp_path, tmp_path / "home" / "cache", "fetch-skeleton",
                                 **settings)


def _left_behind(tmp_path: Path) -> list[str]:
    """Everything a failed fetch left in the cache or the workspace (should be nothing)."""
    found = [str(p.relative_to(tmp_path)) for p in (tmp_path / "home" / "cache").rglob("*")
             if p.is_file()] if (tmp_path / "home" / "cache").exists() else []
    return found + [str(p.relative_to(tmp_path)) for p in (tmp_path / "ws").rglob("*")]


def test_a_huge_pack_is_stopped_during_the_transfer(server: GitHttpServer,
                                                    tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, FETCH_ALLOW=server.url(""), FETCH_MAX_BYTES="1000000")
    with pytest.raises(TemplateError) as info:
        FetchPlain().run(ctx, FetchPlainInput(url=server.url("huge.git") + "#main"))
    message = str(info.value)
    assert "\n" not in message
    # stage 1 (the transfer) stopped it: the post-clone check would word it otherwise
    assert "git clone stopped: the transfer passed 1,000,000 bytes" in message
    assert "ENVFORGE_FETCH_MAX_BYTES" in message and "raise it" in message
    assert str(tmp_path) not in message  # no temp path in the error
    assert _left_behind(tmp_path) == []


def test_a_commit_of_many_files_is_refused_before_checkout(server: GitHttpServer,
                                                           tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, FETCH_ALLOW=server.url(""), FETCH_MAX_ENTRIES="1000")
    with pytest.raises(TemplateError) as info:
        FetchPlain().run(ctx, FetchPlainInput(url=server.url("many.git") + "#main"))
    message = str(info.value)
    assert "its tree holds more than 1,000 files" in message
    assert "ENVFORGE_FETCH_MAX_ENTRIES" in message and "\n" not in message
    assert _left_behind(tmp_path) == []


def test_a_server_that_never_answers_is_given_up_on_in_time(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)  # the accept loop sees `stop` (a close would not wake it)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # take connections and say nothing
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    ctx = _ctx(tmp_path, FETCH_ALLOW=base, FETCH_TIMEOUT_S="2")
    started = time.monotonic()
    try:
        with pytest.raises(TemplateError) as info:
            FetchPlain().run(ctx, FetchPlainInput(url=base + "slow.git#main"))
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()
        for conn in accepted:
            conn.close()
    assert time.monotonic() - started < 15
    assert "took longer than 2 s" in str(info.value)
    assert "ENVFORGE_FETCH_TIMEOUT_S" in str(info.value)
    assert _left_behind(tmp_path) == []


def test_within_budget_the_clone_is_a_plain_tree(server: GitHttpServer, tmp_path: Path
                                                 ) -> None:
    dest = tmp_path / "clone"
    clone_within_budget(server.url("small.git"), dest, "main", budget=CloneBudget(),
                        what="git clone")
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "b.txt"]  # no .git left
    kept = tmp_path / "kept"
    clone_within_budget(server.url("small.git"), kept, budget=CloneBudget(), what="git clone",
                        keep_git=True)
    assert (kept / ".git").is_dir() and (kept / "a.txt").read_text() == "a\n"


def test_the_clone_budget_stops_a_many_file_commit_and_leaves_nothing(
        server: GitHttpServer, tmp_path: Path) -> None:
    """The budget publish:*:pull-request clones the target with (ENVFORGE_CLONE_*)."""
    dest = tmp_path / "target"
    with pytest.raises(BudgetExceededError, match=r"ENVFORGE_CLONE_MAX_ENTRIES"):
        clone_within_budget(server.url("many.git"), dest, "main",
                            budget=CloneBudget(max_entries=500), what="git clone of the target")
    assert not dest.exists()
    with pytest.raises(BudgetExceededError, match=r"ENVFORGE_CLONE_MAX_BYTES"):
        clone_within_budget(server.url("huge.git"), dest, "main",
                            budget=CloneBudget(max_bytes=2_000_000), what="git clone")
    assert not dest.exists()


def test_a_300_byte_file_name_is_named_not_a_vague_checkout_failure(
        server: GitHttpServer, tmp_path: Path) -> None:
    """git stores the name; no Linux file system can: refused by name from ls-tree (before,
    "fatal: Could not reset index file to revision 'HEAD'.")."""
    ctx = _ctx(tmp_path, FETCH_ALLOW=server.url(""))
    with pytest.raises(TemplateError) as info:
        FetchPlain().run(ctx, FetchPlainInput(url=server.url("long.git") + "#main"))
    message = str(info.value)
    assert "holds a file named 'aaaa" in message and "300 bytes in one name" in message
    assert "\n" not in message and str(tmp_path) not in message
    assert _left_behind(tmp_path) == []
