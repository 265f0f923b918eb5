"""Caches are keyed by the credential that filled them and filled atomically."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from envforge.capabilities import CacheStore, Credential, credential_identity, parse_url

ORIGIN = parse_url("https://git.example").origin


def test_an_entry_filled_with_a_token_is_not_seen_without_it_or_with_another(
        tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    alice = Credential.bearer(ORIGIN, "alice-token", "token-a")
    bob = Credential.bearer(ORIGIN, "bob-token", "token-b")
    private = store.get_or_fill("fetch", "https://git.example/p.tgz", alice,
                                lambda d: (d / "secret.txt").write_text("private rows"))
    calls: list[str] = []

    def fill_public(d: Path) -> None:
        calls.append("public")
        (d / "secret.txt").write_text("what the anonymous fetch got")

    public = store.get_or_fill("fetch", "https://git.example/p.tgz", None, fill_public)
    other = store.get_or_fill("fetch", "https://git.example/p.tgz", bob,
                              lambda d: calls.append("bob"))  # type: ignore[func-returns-value]
    assert calls == ["public", "bob"]
    assert len({private, public, other}) == 3
    assert (public / "secret.txt").read_text() == "what the anonymous fetch got"
    # the key names an identity, never the secret
    assert "alice-token" not in str(private)
    assert credential_identity(None) == "public"


def test_a_killed_fill_leaves_no_entry(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from envforge.capabilities import CacheStore\n"
        "def fill(d):\n"
        "    (d / 'half').write_text('x')\n"
        "    print('filling', flush=True)\n"
        "    time.sleep(60)\n"
        f"CacheStore(Path({str(tmp_path)!r})).get_or_fill('fetch', 'k', None, fill)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "filling"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    store = CacheStore(tmp_path)
    entry = store.entry("fetch", "k", None)
    assert not entry.exists()
    got = store.get_or_fill("fetch", "k", None, lambda d: (d / "whole").write_text("y"))
    assert [p.name for p in got.iterdir()] == ["whole"]
    assert not list(entry.parent.glob(".partial-*"))  # the killed one is swept


def test_a_failed_fill_leaves_nothing(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)

    def boom(d: Path) -> None:
        (d / "half").write_text("x")
        raise RuntimeError("network dropped")

    with pytest.raises(RuntimeError):
        store.get_or_fill("fetch", "k", None, boom)
    assert not store.entry("fetch", "k", None).exists()
    assert list(store.entry("fetch", "k", None).parent.iterdir()) == []
