"""Anonymise once, branch per environment.

A *golden* database is an anonymised clone kept on the environments' database server
(``envforge_golden_<name>``). It is built by :func:`clone_database` under another name and then
swapped in atomically (two renames in one transaction), so a refresh never leaves environments
without a golden to branch from; the previous golden is kept as ``..._prev_<stamp>`` up to
``keep`` copies. Goldens refuse connections, so nothing blocks copying them.

A *branch* is one environment's database: ``CREATE DATABASE env TEMPLATE golden STRATEGY
FILE_COPY`` (PostgreSQL copies the files; about 0.6 s for 600 MB where dump and restore take
5 s). PostgreSQL refuses while another session is connected to the template: see
:func:`envforge.db.safety.copy_template`.

Building and swapping a golden holds an advisory lock named after it, so two refreshes that
start together build it once: the second waits, finds it fresh and branches from it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from envforge.db.clone import CloneReport, CloneRequest, clone_database, log
from envforge.db.connection import ServerAddress, connected, quote_ident
from envforge.db.safety import (
    create_owned_database,
    drop_owned_database,
    ownership_marker,
)
from envforge.errors import CopyFailedError, UnsafeTargetError

GOLDEN_PREFIX = "envforge_golden_"
_NAME_MAX = 40  # leaves room for "_prev_<stamp>" within PostgreSQL's 63 bytes
_PREVIOUS = "_prev_"


def golden_database_name(name: str) -> str:
    """``shop`` -> ``envforge_golden_shop`` (lower case, [a-z0-9_])."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise UnsafeTargetError(f"golden name {name!r} has no letters or digits; use e.g. "
                                "the source database's name")
    return (GOLDEN_PREFIX + slug)[:_NAME_MAX]


@dataclass(frozen=True)
class GoldenInfo:
    database: str
    built: datetime
    marker: dict[str, Any]

    def age(self) -> timedelta:
        return datetime.now(UTC) - self.built


def golden_info(server: ServerAddress, golden: str) -> GoldenInfo | None:
    """The golden's marker, or None when it does not exist; refuses a database of that name
    that envforge did not build as a golden."""
    with connected(server.with_database("postgres"), autocommit=True) as conn:
        return _golden_info(conn, golden)


def _golden_info(conn: psycopg.Connection[Any], golden: str) -> GoldenInfo | None:
    try:
        marker = ownership_marker(conn, golden)
    except LookupError:
        return None
    if marker is None or marker.get("role") != "golden":
        raise UnsafeTargetError(f"database {golden!r} exists but is not an envforge golden "
                                "copy; choose another golden name or remove it yourself")
    built = datetime.fromisoformat(str(marker.get("created", "1970-01-01T00:00:00+00:00")))
    return GoldenInfo(golden, built, marker)


@contextmanager
def golden_lock(server: ServerAddress, golden: str) -> Iterator[psycopg.Connection[Any]]:
    """Hold a session advisory lock for ``golden`` (in the maintenance database, so every
    envforge process on the server sees the same lock) while building or swapping it."""
    with connected(server.with_database("postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                     (f"envforge-golden:{golden}",))
        try:
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
                         (f"envforge-golden:{golden}",))


def ensure_golden(request: CloneRequest, max_age: timedelta | None, *, keep: int = 1,
                  logger: Any = log) -> tuple[GoldenInfo, CloneReport | None]:
    """The golden named by ``request.target``, rebuilt when missing or older than
    ``max_age`` (None: only when missing). Returns it and the clone report when it was built."""
    server, golden = request.target, request.target.dbname
    with golden_lock(server, golden) as conn:
        info = _golden_info(conn, golden)
        if info is not None and (max_age is None or info.age() <= max_age):
            logger.info("golden %s is %s old: branching from it", golden,
                        _age_text(info.age()))
            return info, None
        report = _build_and_swap(request, conn, keep, logger)
        built = _golden_info(conn, golden)
        assert built is not None
        return built, report


def build_golden(request: CloneRequest, *, keep: int = 1, logger: Any = log) -> CloneReport:
    """Build the golden named by ``request.target`` anew (a scheduled refresh)."""
    with golden_lock(request.target, request.target.dbname) as conn:
        return _build_and_swap(request, conn, keep, logger)


def _build_and_swap(request: CloneRequest, conn: psycopg.Connection[Any], keep: int,
                    logger: Any) -> CloneReport:
    golden = request.target.dbname
    if not golden.startswith(GOLDEN_PREFIX):
        raise UnsafeTargetError(f"golden database names start with {GOLDEN_PREFIX!r}; got "
                                f"{golden!r}")
    _golden_info(conn, golden)  # refuses a foreign database of that name before any work
    staging = f"{golden}_next"
    report = clone_database(replace(
        request, target=request.target.with_database(staging), replace=True,
        marker=dict(request.marker, role="golden", golden=golden)), logger)
    try:
        conn.execute(f"ALTER DATABASE {quote_ident(staging)} WITH ALLOW_CONNECTIONS false")
        _swap(conn, golden, staging)
    except BaseException:
        drop_owned_database(request.target, staging)
        raise
    logger.info("golden %s rebuilt (%s rows in %.1f s) and swapped in", golden,
                f"{report.rows:,}", report.seconds)
    prune_goldens(request.target, golden, keep, logger)
    return report


def _swap(conn: psycopg.Connection[Any], golden: str, staging: str, attempts: int = 5) -> None:
    """golden -> golden_prev_<stamp>, staging -> golden, in one transaction: a branch sees the
    old golden or the new one, never none. Renaming waits for branches being copied (they
    hold a share lock on the template); sessions connected to the old golden are ended."""
    previous = f"{golden}{_PREVIOUS}{datetime.now(UTC):%Y%m%d%H%M%S%f}"  # two rebuilds a second
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                      (golden,)).fetchone()
                if exists:
                    conn.execute(f"ALTER DATABASE {quote_ident(golden)} RENAME TO "
                                 f"{quote_ident(previous)}")
                conn.execute(f"ALTER DATABASE {quote_ident(staging)} RENAME TO "
                             f"{quote_ident(golden)}")
            return
        except psycopg.errors.ObjectInUse as e:
            if attempt == attempts:
                raise CopyFailedError(f"swapping golden {golden}: {str(e).strip()}; sessions "
                                      "kept connecting to it") from None
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (golden,))
            time.sleep(0.1 * attempt)


def prune_goldens(server: ServerAddress, golden: str, keep: int, logger: Any = log) -> list[str]:
    """Drop previous goldens beyond the ``keep`` newest (retention); returns those dropped."""
    with connected(server.with_database("postgres"), autocommit=True) as conn:
        names = [str(r[0]) for r in conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1 DESC",
            (golden + _PREVIOUS,))]
    dropped = []
    for name in names[max(keep, 0):]:  # stamps sort by time: newest first
        if drop_owned_database(server, name):
            dropped.append(name)
            logger.info("retention: dropped previous golden %s", name)
    return dropped


def branch_database(server: ServerAddress, golden: str, target: str, marker: dict[str, Any],
                    *, replace: bool = False, logger: Any = log) -> float:
    """Create ``target`` as a file copy of the envforge golden ``golden``; returns seconds."""
    started = time.perf_counter()
    info = golden_info(server, golden)
    if info is None:
        raise CopyFailedError(f"golden {golden!r} does not exist on {server.label}: build it "
                              "first (db:clone with strategy: branch builds it when missing)")
    create_owned_database(server, target, dict(marker, strategy="branch", golden=golden,
                          golden_built=info.built.isoformat(timespec="seconds")),
                          replace=replace, template=golden)
    seconds = time.perf_counter() - started
    logger.info("branched %s from golden %s (built %s ago) in %.2f s", target, golden,
                _age_text(info.age()), seconds)
    return seconds


def parse_age(text: str) -> timedelta:
    """``90m``, ``20h``, ``7d`` -> timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd])\s*", text)
    if not match:
        raise ValueError(f"age {text!r} is not like 90m, 20h or 7d")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


def _age_text(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
