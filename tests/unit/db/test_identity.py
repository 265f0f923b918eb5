"""A golden's identity (issue 26 re-check): what it records, what makes it stale and what
makes it another source's."""

from __future__ import annotations

from pathlib import Path

import pytest

import envforge.db.identity as identity_module
from envforge.db.identity import GoldenIdentity, engine_digest

BASE = {"source": "sysid:1", "database": "shop", "rules": "r" * 64, "key": "k" * 32,
        "schema": "s" * 64}


def test_a_golden_recorded_before_instance_and_engine_is_stale_not_foreign() -> None:
    old = GoldenIdentity.from_marker({"identity": BASE})
    assert old is not None
    now = GoldenIdentity(**BASE, instance="2026-12-05 00:00:00+00", engine=engine_digest())
    assert old.same_source(now)  # rebuilt for its own source, never refused
    assert old.differences(now) == [
        "source server instance (restarted, or another copy of it)",
        "envforge's anonymisation code"]
    assert GoldenIdentity.from_marker(
        {"identity": now.as_marker()}) == now  # recorded as it is compared


def test_a_copy_of_the_source_server_differs_by_its_start() -> None:
    """Two servers from one data directory share the system identifier: the start time is
    what tells them apart, and it only ever makes the golden stale (rebuilt from the asking
    source), so neither gets the other's rows."""
    a = GoldenIdentity(**BASE, instance="2026-12-05 00:00:01+00", engine="e")
    b = GoldenIdentity(**BASE, instance="2026-12-05 00:03:17+00", engine="e")
    assert a.same_source(b) and a != b
    assert a.differences(b) == ["source server instance (restarted, or another copy of it)"]


def test_the_engine_digest_follows_the_anonymisation_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine_digest()
    assert len(real) == 64 and real == engine_digest()
    package = Path(identity_module.__file__).parent
    for name in identity_module.ENGINE_FILES:
        (tmp_path / name).write_bytes((package / name).read_bytes())
    (tmp_path / "identity.py").write_text("")
    monkeypatch.setattr(identity_module, "__file__", str(tmp_path / "identity.py"))
    engine_digest.cache_clear()
    try:
        assert engine_digest() == real  # the same code, wherever it lies
        engine_digest.cache_clear()
        with (tmp_path / "transformers.py").open("a") as f:
            f.write("\n# a fix to how a value is faked\n")
        assert engine_digest() != real
    finally:
        engine_digest.cache_clear()


def test_every_engine_source_is_there() -> None:
    """A renamed module left in the list would make every start count as new code (each
    branch rebuilding its golden); a new C source left out would let changed fakes through."""
    from envforge.db import identity

    here = Path(identity.__file__).parent
    for name in identity.ENGINE_FILES:
        assert (here / name).is_file(), name
    compiled = {p.name for p in here.glob("*.c")} | {p.name for p in here.glob("*.h")}
    assert compiled <= set(identity.ENGINE_FILES)
