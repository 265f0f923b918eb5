"""A small clone's post-data section (indexes, constraints, foreign keys) on two sessions.

``pg_restore --jobs`` builds a dump's indexes and constraints on several sessions, running
at once only entries whose tables no running entry locks. For a small clone its processes
and new sessions cost more than they save, so the section runs as SQL over the clone's own
sessions instead (:func:`envforge.db.schema.apply_section_sql`). This does the same over two
of them: the section's entries (pg_restore's ``-- Name: ...; Type: ...`` blocks, in the dump's
order, which has every entry after what it depends on) are cut into runs; a run of index and
unique/primary-key/check builds, or of foreign keys, goes on both sessions at once, never two
entries on one table (or one partitioned table's family) at a time; anything else (index
attachments, triggers, rules, comments, an entry whose tables cannot be told from its text)
runs alone, in order, between the runs. Each entry commits on its own (the target is new and
unseen until the clone finishes; a failure drops it). Two statements that still wait on each
other's locks (PostgreSQL ends one with a deadlock error after ``deadlock_timeout``) are
retried. A section that cannot be cut this way (a setting changed between entries) runs as
one transaction on one session, as before.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from envforge.db.connection import ServerAddress
from envforge.db.schema import failure_reason
from envforge.errors import CopyFailedError

_HEADER = re.compile(r"^-- Name: .*; Type: (?P<kind>[A-Z ]+); Schema: ")
_NAME = r"(?:[a-z_][a-z0-9_$]*\.)?[a-z_][a-z0-9_$]*"  # as pg_dump prints an unquoted name
_ALTER_ONLY = re.compile(rf"ALTER TABLE ONLY (?P<table>{_NAME})\n\s+ADD CONSTRAINT \S+ "
                         r"(?P<what>PRIMARY KEY|UNIQUE|CHECK|EXCLUDE|FOREIGN KEY)\b")
_CREATE_INDEX = re.compile(rf"CREATE (?:UNIQUE )?INDEX \S+ ON (?:ONLY )?(?P<table>{_NAME}) "
                           r"USING ")
_REFERENCES = re.compile(rf" REFERENCES (?P<table>{_NAME})\(")
# Settings pg_restore may put between entries that only restate the defaults.
_HARMLESS_SETS = frozenset({"SET default_tablespace = '';",
                            "SET default_table_access_method = heap;"})
DEADLOCK_RETRIES = 3


@dataclass(frozen=True)
class Entry:
    """One entry of the section: its statement(s), and the tables they lock (None: not
    known; then it runs alone)."""

    kind: str
    sql: str
    tables: frozenset[str] | None
    parallel: str | None  # "build" or "fk": entries that may run beside others of that kind


def split_section(sql_text: str, families: Mapping[str, frozenset[str]]
                  ) -> tuple[str, list[Entry]] | None:
    """The section's preamble (its session settings) and its entries; None when it cannot
    be cut safely. ``families``: a partition or partitioned table -> every table of its
    partition tree (one lock set: a statement on one of them may lock the others)."""
    lines = sql_text.split("\n")
    starts = [i - 1 for i, line in enumerate(lines)
              if line.startswith("-- Name: ") and i > 0 and lines[i - 1] == "--"]
    if not starts:
        return None
    preamble = "\n".join(lines[:starts[0]])
    entries = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        block = lines[start:end]
        header = _HEADER.match(block[1])
        if header is None:
            return None
        for line in block:
            if (line.startswith(("SET ", "SELECT pg_catalog.set_config", "\\"))
                    and line not in _HARMLESS_SETS):
                return None  # a setting for the entries after it: keep the section whole
        text = "\n".join(block)
        entries.append(_entry(header["kind"], text, families))
    return preamble, entries


def _entry(kind: str, text: str, families: Mapping[str, frozenset[str]]) -> Entry:
    body = "\n".join(line for line in text.split("\n")
                     if not line.startswith("--") and line not in _HARMLESS_SETS).strip()
    tables: set[str] | None = None
    parallel = None
    if kind in ("CONSTRAINT", "FK CONSTRAINT"):
        found = _ALTER_ONLY.match(body)
        if found is not None and body.count(";") == 1:
            is_fk = found["what"] == "FOREIGN KEY"
            referenced = _REFERENCES.search(body) if is_fk else None
            if not is_fk or referenced is not None:
                tables = {found["table"]} | ({referenced["table"]} if referenced else set())
                parallel = "fk" if is_fk else "build"
    elif kind == "INDEX":
        found = _CREATE_INDEX.match(body)
        if found is not None and body.count(";") == 1:
            tables, parallel = {found["table"]}, "build"
    if tables is None:
        return Entry(kind, text, None, None)
    locked = set(tables)
    for table in tables:
        locked |= families.get(table, frozenset())
    return Entry(kind, text, frozenset(locked), parallel)


def partition_families(trees: Mapping[str, list[str]]) -> dict[str, frozenset[str]]:
    """``{root: [leaves]}`` of the partitioned tables -> every member's whole tree."""
    families: dict[str, frozenset[str]] = {}
    for root, leaves in trees.items():
        family = frozenset([root, *leaves])
        for member in family:
            families[member] = family
    return families


def apply_post_data(sessions: tuple[psycopg.Connection[Any], psycopg.Connection[Any]],
                    target: ServerAddress, preamble: str, entries: list[Entry]) -> None:
    """Run the entries (from :func:`split_section`) on two autocommit sessions to ``target``:
    each run of parallel entries shared out over both, the others in order on the first,
    each run one transaction per session."""
    try:
        for conn in sessions:
            conn.execute(preamble.encode("utf-8"))
        run: list[Entry] = []
        for entry in entries:
            if run and entry.parallel != run[0].parallel:
                _run(sessions, run)
                run = []
            run.append(entry)
        if run:
            _run(sessions, run)
    except psycopg.Error as e:
        reason = failure_reason("ERROR: " + str(e).strip())
        raise CopyFailedError(f"restoring the post-data section on {target.label} failed: "
                              f"{reason}") from None
    finally:
        for conn in sessions:
            if not conn.closed and not conn.broken:
                conn.execute("RESET search_path")


def share_out(run: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """The run's entries in two shares that lock no table in common (entries linked by a
    table they share stay together), each in the dump's order, of about equal length."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for entry in run:
        first, *rest = sorted(entry.tables or ())
        for other in rest:
            parent[root(other)] = root(first)
    groups: dict[str, int] = {}
    for entry in run:
        group = root(min(entry.tables or ()))
        groups[group] = groups.get(group, 0) + 1
    share_of: dict[str, int] = {}
    load = [0, 0]
    for group, count in sorted(groups.items(), key=lambda item: (-item[1], item[0])):
        share = 0 if load[0] <= load[1] else 1
        share_of[group] = share
        load[share] += count
    shares: tuple[list[Entry], list[Entry]] = ([], [])
    for entry in run:
        shares[share_of[root(min(entry.tables or ()))]].append(entry)
    return shares


def _run(sessions: tuple[psycopg.Connection[Any], psycopg.Connection[Any]],
         run: list[Entry]) -> None:
    """A run's two shares (:func:`share_out`; entries that run alone: all on the first) at
    once, one transaction on each session; returns when both have committed (raises the
    first failure after both have ended). A share ended by a deadlock (a lock its text did
    not show) is run again."""
    shares = share_out(run) if run[0].parallel is not None else (run, [])
    failed: list[BaseException] = []

    def work(me: int) -> None:
        conn = sessions[me]
        try:
            for attempt in range(DEADLOCK_RETRIES + 1):
                try:
                    with conn.transaction():
                        for entry in shares[me]:
                            conn.execute(entry.sql.encode("utf-8"))
                    return
                except psycopg.errors.DeadlockDetected:
                    if attempt == DEADLOCK_RETRIES:
                        raise
        except BaseException as e:
            failed.append(e)

    if not shares[1]:
        work(0)
    else:
        helper = threading.Thread(target=work, args=(1,), name="envforge-post-data",
                                  daemon=True)
        helper.start()
        work(0)
        helper.join()
    if failed:
        raise failed[0]
