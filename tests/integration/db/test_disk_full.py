"""A real disk-full on the target: a second throw-away cluster whose database files (``base/``)
live on a 40 MB tmpfs (WAL stays on the normal disk, so PostgreSQL reports "No space left on
device" as an error instead of stopping). Clone and snapshot restore must fail with an error
naming what was being written and leave no target behind (the space is given back)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envforge.db.clone import CloneRequest, clone_database
from envforge.db.connection import ServerAddress
from envforge.db.rules import parse_rules
from envforge.db.snapshot import LocalDirectoryStore, restore_snapshot, take_snapshot
from envforge.errors import CopyFailedError

from .conftest import SCRIPT, TEST_KEY, _free_port, create_database, database_exists

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TMPFS_MB = 40  # a fresh cluster's base/ takes ~22 MB, a new database ~7.5 MB more
RULES = parse_rules({"version": 1, "strict": False,
                     "tables": {"events": {"payload": "passthrough", "email": "email"}}})


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


def _free_mb(path: Path) -> float:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize / 1e6


@pytest.fixture(scope="module")
def small_disk_server() -> Iterator[tuple[ServerAddress, Path]]:
    """A cluster whose database files sit on a small tmpfs; skipped where mounting is not
    allowed (needs root or CAP_SYS_ADMIN)."""
    workdir = Path(tempfile.mkdtemp(prefix="envforge-pg-small-"))
    disk = workdir / "disk"
    disk.mkdir()
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}M", "tmpfs", str(disk))
    if mounted.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    port = _free_port()
    try:
        for step in ("start", "stop"):  # initdb once, then move base/ onto the small disk
            done = _run("bash", str(SCRIPT), step, str(workdir), *([str(port)] * (step == "start")))
            assert done.returncode == 0, done.stderr
        base = workdir / "data" / "base"
        moved = _run("cp", "-a", str(base), str(disk / "base"))
        assert moved.returncode == 0, moved.stderr
        shutil.rmtree(base)
        base.symlink_to(disk / "base")
        _run("chown", "-h", "postgres:", str(base))
        started = _run("bash", str(SCRIPT), "start", str(workdir), str(port))
        assert started.returncode == 0, started.stderr
        yield ServerAddress(host="127.0.0.1", port=port, user="postgres",
                            dbname="postgres"), disk
    finally:
        _run("bash", str(SCRIPT), "stop", str(workdir))
        _run("umount", str(disk))
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def big_source(pg_server: ServerAddress) -> ServerAddress:
    """About 45 MB of rows: more than the small disk has left after creating a database."""
    return create_database(pg_server, "prod_disk_full", """
        CREATE TABLE events (id bigint PRIMARY KEY, email text NOT NULL, payload text NOT NULL);
        INSERT INTO events SELECT g, 'user' || g || '@corp.test', repeat(md5(g::text), 6)
          FROM generate_series(1, 150000) g;""")


def _assert_space_given_back(server: ServerAddress, disk: Path, name: str,
                             free_before: float) -> None:
    assert not database_exists(server, name)
    assert _free_mb(disk) >= free_before - 1  # the half-written files are gone
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute("SELECT 1")  # the server is still up and usable


def test_clone_onto_a_full_disk(small_disk_server: tuple[ServerAddress, Path],
                                big_source: ServerAddress) -> None:
    server, disk = small_disk_server
    free_before = _free_mb(disk)
    assert free_before < 20  # the data below cannot fit
    target = server.with_database("envforge_disk_full")
    with pytest.raises(CopyFailedError) as caught:
        clone_database(CloneRequest(big_source, target, RULES, TEST_KEY, jobs=1))
    message = str(caught.value)
    assert "public.events" in message and "No space left on device" in message, message
    _assert_space_given_back(server, disk, "envforge_disk_full", free_before)


def test_snapshot_restore_onto_a_full_disk(small_disk_server: tuple[ServerAddress, Path],
                                           big_source: ServerAddress, pg_server: ServerAddress,
                                           tmp_path: Path) -> None:
    server, disk = small_disk_server
    roomy = pg_server.with_database("envforge_disk_full_origin")
    clone_database(CloneRequest(big_source, roomy, RULES, TEST_KEY, jobs=1, replace=True))
    store = LocalDirectoryStore(tmp_path)
    take_snapshot(pg_server, roomy.dbname, store, "diskfull")
    free_before = _free_mb(disk)
    with pytest.raises(CopyFailedError) as caught:
        restore_snapshot(store, "diskfull", server.with_database("envforge_disk_full_r"),
                         {"environment": "disk-full"}, jobs=1)
    message = str(caught.value)
    assert "restoring the snapshot" in message and "No space left on device" in message, \
        message
    _assert_space_given_back(server, disk, "envforge_disk_full_r", free_before)
