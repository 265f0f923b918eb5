"""Snapshots of anonymised clones: production is read once, many environments restore.

Only databases envforge created (clone, seed or restore, so already anonymised) can become
snapshots. Storage is pluggable through :class:`SnapshotStore`; the default keeps
``<name>.dump`` (pg_dump custom format) and ``<name>.json`` (metadata) in a local directory.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from envforge.db.connection import ServerAddress
from envforge.db.safety import assert_owned, create_owned_database, drop_owned_database
from envforge.db.schema import dump_database, restore_database
from envforge.errors import SnapshotError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    database: str
    created: str
    size_bytes: int
    origin: dict[str, Any]  # the ownership marker of the database it was taken from


class SnapshotStore(Protocol):
    """Where snapshot files live. ``fetch`` returns a local path readable by pg_restore."""

    def put(self, name: str, dump_file: Path, info: SnapshotInfo) -> None: ...
    def fetch(self, name: str) -> tuple[Path, SnapshotInfo]: ...
    def list(self) -> list[SnapshotInfo]: ...
    def delete(self, name: str) -> None: ...


class LocalDirectoryStore:
    """Snapshots as files in one directory (default ``$ENVFORGE_HOME/snapshots``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, name: str, dump_file: Path, info: SnapshotInfo) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"{name}.dump"
        shutil.move(dump_file, final)  # a rename when on the same file system
        meta = self.root / f"{name}.json"
        meta.write_text(json.dumps(asdict(info), indent=2, sort_keys=True), encoding="utf-8")

    def fetch(self, name: str) -> tuple[Path, SnapshotInfo]:
        dump, meta = self.root / f"{name}.dump", self.root / f"{name}.json"
        if not dump.is_file() or not meta.is_file():
            known = ", ".join(i.name for i in self.list()) or "none"
            raise SnapshotError(f"snapshot {name!r} not found in {self.root} (available: {known})")
        try:
            return dump, SnapshotInfo(**json.loads(meta.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as e:
            raise SnapshotError(f"snapshot {name!r}: unreadable metadata {meta}: {e}") from None

    def list(self) -> list[SnapshotInfo]:
        if not self.root.is_dir():
            return []
        return [self.fetch(p.stem)[1] for p in sorted(self.root.glob("*.json"))
                if (self.root / f"{p.stem}.dump").is_file()]

    def delete(self, name: str) -> None:
        for suffix in (".dump", ".json"):
            (self.root / f"{name}{suffix}").unlink(missing_ok=True)


def check_snapshot_name(name: str) -> str:
    if not _NAME.match(name):
        raise SnapshotError(f"snapshot name {name!r} is invalid: use letters, digits, '.', '_' "
                            "or '-' (at most 128 characters)")
    return name


def take_snapshot(server: ServerAddress, database: str, store: SnapshotStore,
                  name: str) -> SnapshotInfo:
    """Dump an envforge-created (anonymised) database into the store under ``name``."""
    check_snapshot_name(name)
    origin = assert_owned(server, database)
    with tempfile.TemporaryDirectory(prefix="envforge-snapshot-") as tmp:
        dump = Path(tmp) / f"{name}.dump"
        dump_database(server.with_database(database), dump)
        info = SnapshotInfo(name=name, database=database,
                            created=datetime.now(UTC).isoformat(timespec="seconds"),
                            size_bytes=dump.stat().st_size, origin=origin)
        store.put(name, dump, info)
    return info


def restore_snapshot(store: SnapshotStore, name: str, target: ServerAddress,
                     marker: dict[str, Any], *, replace: bool = False, jobs: int = 2,
                     logger: Any = None) -> float:
    """Create the target (envforge-owned) and restore the snapshot into it; on any failure the
    target is dropped. Returns seconds taken."""
    started = time.perf_counter()
    dump, info = store.fetch(check_snapshot_name(name))
    create_owned_database(target, target.dbname, dict(marker, strategy="snapshot",
                          snapshot=name), replace=replace)
    try:
        restore_database(target, dump, jobs=jobs)
    except BaseException:
        drop_owned_database(target, target.dbname)
        raise
    seconds = time.perf_counter() - started
    if logger is not None:
        logger.info("restored snapshot %s (%.1f MB) into %s in %.1f s", name,
                    info.size_bytes / 1e6, target.label, seconds)
    return seconds


def prune_snapshots(store: SnapshotStore, keep: int, prefix: str = "",
                    max_age_days: float | None = None) -> list[str]:
    """Retention: of the snapshots whose name starts with ``prefix``, keep the ``keep`` newest
    (and, with ``max_age_days``, none older than that); delete the rest. Returns their names."""
    infos = sorted((i for i in store.list() if i.name.startswith(prefix)),
                   key=lambda i: (i.created, i.name), reverse=True)
    now = datetime.now(UTC)
    doomed = infos[max(keep, 0):]
    if max_age_days is not None:
        doomed += [i for i in infos[:max(keep, 0)]
                   if (now - datetime.fromisoformat(i.created)).total_seconds()
                   > max_age_days * 86400]
    for info in doomed:
        store.delete(info.name)
    return [i.name for i in doomed]
