"""The workspace file capability: no link followed, never .git, names and budgets checked."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envforge.capabilities import FileBudget, WorkspaceFiles, is_git_name
from envforge.errors import BudgetExceededError, FileRefusedError


def test_a_write_never_goes_through_a_linked_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "repo"
    (root / "venv" / "lib").mkdir(parents=True)
    # the target repository's own link, as in a committed virtual environment
    (root / "venv" / "lib" / "site-packages").symlink_to(outside)
    files = WorkspaceFiles(root)
    with pytest.raises(FileRefusedError, match=r"site-packages.*symbolic link"):
        files.write_text("venv/lib/site-packages/evil.pth", "import os")
    assert list(outside.iterdir()) == []


def test_a_write_replaces_a_final_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    root = tmp_path / "ws"
    root.mkdir()
    (root / "config.yaml").symlink_to(victim)
    files = WorkspaceFiles(root)
    with pytest.raises(FileRefusedError, match="already exists"):
        files.write_text("config.yaml", "owned", overwrite=False)
    files.write_text("config.yaml", "mine")
    assert victim.read_text() == "keep"
    assert not (root / "config.yaml").is_symlink()
    assert (root / "config.yaml").read_text() == "mine"


def test_reading_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret")
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a").symlink_to(tmp_path / "secret")
    with pytest.raises(FileRefusedError, match="symbolic link"):
        WorkspaceFiles(root).read_bytes("a")


@pytest.mark.parametrize("name", [".git/config", ".GIT/config", ".Git/hooks/pre-commit",
                                  ".git /config", ".git./config", "sub/.git/config",
                                  "git~1/config", ".g\u200cit/config", ".git"])
def test_git_metadata_in_any_spelling_is_never_written(tmp_path: Path, name: str) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]\n")
    with pytest.raises(FileRefusedError, match=r"\.git"):
        WorkspaceFiles(tmp_path).write_text(name, "[remote \"origin\"]\nreceivepack = sh\n")
    assert (tmp_path / ".git" / "config").read_text() == "[core]\n"


@pytest.mark.parametrize("name, why", [
    ("a\0b", "NUL"), ("x" * 300, "over 255 bytes"), ("../up", r"'\.\.'"),
    ("a/../../up", r"'\.\.'"), ("/etc/passwd", "absolute"), ("nl\nname", "control"),
    ("é" * 200, "over 255 bytes")])
def test_bad_names_are_one_line_errors_naming_the_file(tmp_path: Path, name: str,
                                                       why: str) -> None:
    with pytest.raises(FileRefusedError, match=why) as caught:
        WorkspaceFiles(tmp_path).write_text(name, "x")
    assert "\n" not in str(caught.value).replace("\\n", "")
    assert str(tmp_path) not in str(caught.value)


def test_budgets_bound_files_bytes_and_depth(tmp_path: Path) -> None:
    files = WorkspaceFiles(tmp_path, FileBudget(max_files=3, max_bytes=100, max_depth=4))
    for i in range(3):
        files.write_text(f"f{i}", "x")
    with pytest.raises(BudgetExceededError, match="3 files allowed"):
        files.write_text("f3", "x")
    with pytest.raises(BudgetExceededError, match="100 bytes"):
        WorkspaceFiles(tmp_path, FileBudget(max_bytes=100)).write_bytes("big", b"x" * 101)
    with pytest.raises(BudgetExceededError, match="5 folders deep"):
        WorkspaceFiles(tmp_path, FileBudget(max_depth=4)).write_text("a/b/c/d/e", "x")


def test_copy_tree_keeps_links_as_links_and_skips_git(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "d").mkdir(parents=True)
    (source / "d" / "f.sh").write_text("echo")
    os.chmod(source / "d" / "f.sh", 0o755)
    (source / "l").symlink_to("/etc/passwd")
    (source / ".git").mkdir()
    (source / ".git" / "config").write_text("x")
    target = tmp_path / "dst"
    target.mkdir()
    copied = WorkspaceFiles(target).copy_tree(WorkspaceFiles(source), "", "sub")
    assert copied == 2
    assert os.readlink(target / "sub" / "l") == "/etc/passwd"
    assert (target / "sub" / "d" / "f.sh").stat().st_mode & 0o111
    assert not (target / "sub" / ".git").exists()


def test_remove_and_rename_never_follow_links(tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious").write_text("x")
    root = tmp_path / "ws"
    root.mkdir()
    (root / "link").symlink_to(keep)
    files = WorkspaceFiles(root)
    files.remove("link")
    assert (keep / "precious").exists() and not (root / "link").exists()
    (root / "d").symlink_to(keep)
    files.write_text("a", "1")
    with pytest.raises(FileRefusedError, match="symbolic link"):
        files.rename("a", "d/a")
    assert not (keep / "a").exists()


@pytest.mark.parametrize("name", [".git", ".GIT", ".git ", ".git.", "GIT~1", ".gi\u200dt"])
def test_git_names(name: str) -> None:
    assert is_git_name(name)


@pytest.mark.fuzz
@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "..", ".", ".git", "b c", "\0", "x" * 260, "/", "\\",
                                 ".GIT", "ok"]), max_size=6))
def test_fuzzed_paths_stay_beneath_the_root(tmp_path_factory: pytest.TempPathFactory,
                                           parts: list[str]) -> None:
    base = tmp_path_factory.mktemp("fuzz")
    root = base / "root"
    root.mkdir()
    with contextlib.suppress(FileRefusedError, BudgetExceededError):
        WorkspaceFiles(root).write_text("/".join(parts), "x")
    outside = [p for p in base.rglob("*") if not p.is_relative_to(root)]
    assert outside == []
    assert not any(is_git_name(part) for p in root.rglob("*") for part in p.parts)
