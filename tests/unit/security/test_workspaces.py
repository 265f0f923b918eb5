"""D14: workspaces of killed runs are removed by the next run; live runs' are kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from envforge.run.workspaces import new_workspace, remove_stale_workspaces


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    return tmp_path


def test_a_killed_runs_workspace_is_removed_by_the_next_run() -> None:
    code = ("import sys, time; from envforge.run.workspaces import new_workspace; "
            "p = new_workspace('killed'); (p / 'f').write_text('x'); print(p, flush=True); "
            "time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ})
    try:
        assert child.stdout is not None
        killed = Path(child.stdout.readline().strip())
        assert killed.is_dir()
        mine = new_workspace("alive")
        assert killed.is_dir()  # its process still runs: kept
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    second = new_workspace("next")
    assert not killed.exists()
    assert mine.is_dir() and second.is_dir()  # this process is alive: its own are kept
    assert remove_stale_workspaces() == []


def test_a_workspaces_folder_made_by_someone_else_is_refused(tmp_path: Path) -> None:
    """Another local user (or a link) at the shared temp path is never used."""
    from envforge.errors import ConfigurationError
    from envforge.run.workspaces import check_root

    elsewhere = tmp_path / "theirs"
    elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    with pytest.raises(ConfigurationError, match="not a folder"):
        check_root(link)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 12345, 12345)
    with pytest.raises(ConfigurationError, match="another user"):
        check_root(foreign)
    open_one = tmp_path / "open"
    open_one.mkdir(mode=0o777)
    open_one.chmod(0o777)
    check_root(open_one)
    assert (open_one.stat().st_mode & 0o777) == 0o700
