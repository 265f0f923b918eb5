"""The warm runner's socket: it never chmods the folder it is given, never removes what sits
at its path (a file, folder, link, a live runner's socket), only its own stale socket."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from envforge.launch.warm_runner import listen


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    server = listen(shared / "sock")
    try:
        assert stat.S_IMODE(shared.stat().st_mode) == 0o755
        assert stat.S_IMODE(os.lstat(shared / "sock").st_mode) == 0o600
    finally:
        server.close()


def test_a_missing_folder_is_made_private(tmp_path: Path) -> None:
    server = listen(tmp_path / "new" / "sock")
    server.close()
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


@pytest.mark.parametrize("kind", ["file", "folder", "link"])
def test_what_sits_at_the_path_is_never_removed(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "sock"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    if kind == "file":
        path.write_text("not a socket")
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(victim)
    with pytest.raises(SystemExit, match="not a socket"):
        listen(path)
    assert os.path.lexists(path) and victim.read_text() == "keep"


def test_a_live_runner_is_not_replaced_and_a_stale_socket_is(tmp_path: Path) -> None:
    path = tmp_path / "sock"
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(path))
    live.listen(1)
    try:
        with pytest.raises(SystemExit, match="already listens"):
            listen(path)
    finally:
        live.close()  # the socket file stays: now stale
    server = listen(path)
    server.close()
