"""Public template collections, dry-run by envforge and by real nunjucks: every template both
can dry-run comes out byte for byte the same.

The collections are third-party repositories and are never committed: clone them outside the
project and name the folder holding them (one subfolder per collection, as `git clone` makes
them) with ENVFORGE_TEST_BACKSTAGE_COLLECTIONS; without it these tests are skipped, saying so,
so `make test` stays offline-safe. docs/backstage.md lists the collections of the last run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.backstage_oracle.client import Oracle
from tests.backstage_oracle.collections import compare_collection

_VARIABLE = "ENVFORGE_TEST_BACKSTAGE_COLLECTIONS"


def _collections() -> list[Path]:
    found: list[Path] = []
    for entry in os.environ.get(_VARIABLE, "").split(os.pathsep):
        folder = Path(entry).expanduser() if entry else None
        if folder is not None and folder.is_dir():
            found += sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return found


COLLECTIONS = _collections()


@pytest.mark.skipif(not COLLECTIONS, reason=f"no public collections here: set {_VARIABLE} to a "
                    "folder of cloned template repositories (they are never committed)")
@pytest.mark.parametrize("mode", ["all", "required"])
@pytest.mark.parametrize("collection", COLLECTIONS, ids=[p.name for p in COLLECTIONS])
def test_public_collection_dry_runs_to_what_backstage_writes(oracle: Oracle, collection: Path,
                                                             mode: str) -> None:
    rows = compare_collection(oracle, collection, mode)  # type: ignore[arg-type]
    assert rows, f"{collection} holds no v1beta3 template"
    different = [f"{r.template}: {r.difference}" for r in rows if r.verdict == "DIFFERENT"]
    assert not different, different
