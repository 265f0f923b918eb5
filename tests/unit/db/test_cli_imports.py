"""`envforge db` starts fast: the parser of `envforge db ...` and the clone path import none
of the heavy libraries other commands need (issue 26: `envforge db --help` alone took as long
as a whole Pagila dump and restore). Checked in a fresh interpreter, where sys.modules is
what the command really loads."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("prefect", "kubernetes", "httpx", "faker", "blocks", "envforge.settings")


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


def test_the_db_parser_loads_no_database_code_and_no_heavy_library() -> None:
    modules = loaded_after("from envforge.cli import build_parser\n"
                           "build_parser(['db', 'clone', '--help'])")
    assert "envforge.cli.db" in modules
    assert not heavy(modules)
    assert "psycopg" not in modules and "envforge.cli.templates" not in modules


def test_the_clone_and_branch_paths_load_no_heavy_library() -> None:
    modules = loaded_after("import envforge.cli.db, envforge.db.clone, envforge.db.branch, "
                           "envforge.db.rules")
    assert "psycopg" in modules
    assert not heavy(modules)


def test_what_starts_a_clone_or_a_branch_loads_no_rules_models() -> None:
    """`envforge db clone` opens the snapshot, the schema dump and CREATE DATABASE, and
    `envforge db branch` starts reading the source's identity, before the rules' models are
    imported: those imports then overlap the servers' work (envforge/db/clone_start.py,
    SourceFactsReader)."""
    modules = loaded_after("import envforge.cli.db, envforge.db.clone_start, "
                           "envforge.db.branch")
    assert "psycopg" in modules
    assert "envforge.db.rules" not in modules and "envforge.db.classify" not in modules


def test_the_early_schema_dump_needs_nothing_but_the_standard_library() -> None:
    """`envforge db clone --source DSN` begins its snapshot and schema dump before importing
    psycopg, pydantic or the settings (envforge/db/early_dump.py)."""
    modules = loaded_after("import envforge.cli.db, envforge.db.early_dump")
    assert not {"psycopg", "pydantic", "envforge.settings", "yaml"} & modules
    assert not heavy(modules)
