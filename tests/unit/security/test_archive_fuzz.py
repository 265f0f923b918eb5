"""Fuzzed archive member names: whatever a tar names its members, unpacking writes only
beneath the target folder, never .git, and fails (if it fails) in one line."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envforge.actions.fetch_sources import _untar
from envforge.capabilities import FileBudget, TransferBudget, WorkspaceFiles, is_git_name
from envforge.errors import EnvforgeError

PARTS = st.sampled_from(["a", "..", ".", ".git", ".GIT", "git~1", "b c", "x" * 300, "",
                         "/", "\\\\", "ok", "é", ".git "])


def _tar(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


@pytest.mark.fuzz
@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(PARTS, min_size=1, max_size=5).map("/".join), min_size=1,
                max_size=4))
def test_fuzzed_member_names_stay_beneath_the_folder(tmp_path_factory: pytest.TempPathFactory,
                                                     names: list[str]) -> None:
    base = tmp_path_factory.mktemp("untar")
    root = base / "root"
    root.mkdir()
    files = WorkspaceFiles(root, FileBudget(max_files=50), "archive")
    try:
        _untar(_tar(names), files, "https://a.example/x.tar", TransferBudget(max_entries=50))
    except EnvforgeError as e:
        assert "\n" not in str(e) and str(base) not in str(e)
    assert [p for p in base.rglob("*") if not p.is_relative_to(root)] == []
    assert not any(is_git_name(part) for p in root.rglob("*")
                   for part in p.relative_to(root).parts)


def test_a_name_the_tar_module_cannot_hold_is_still_one_line(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(EnvforgeError) as info:
        _untar(b"not a tar at all" * 100, WorkspaceFiles(root), "https://a.example/x.tar",
               TransferBudget())
    assert "\n" not in str(info.value)
