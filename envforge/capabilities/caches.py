"""Caches keyed by who filled them, filled atomically.

An entry's key holds the *identity* of the credential used to fetch it: a digest of the
credential's origin and id (never the secret). A fetch without a credential reads and
writes only public entries, so a private archive fetched with one token is never handed to a
run that has none, or another token. An entry is built in a ``.partial-<pid>-...`` folder
beside its place and renamed into it when complete: a download killed half-way leaves no
entry (its partial folder is removed by the next fill once its process is gone).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from envforge.capabilities.egress import Credential
from envforge.core.processes import pid_exists

PUBLIC = "public"


def credential_identity(credential: Credential | None) -> str:
    """``public`` without a credential; else a digest of its origin and id."""
    if credential is None:
        return PUBLIC
    text = f"{credential.origin}\n{credential.id}"
    return "cred-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def token_id(token: str) -> str:
    """A stable id for a token that is not the token (a digest; tokens carry enough entropy
    that this cannot be turned back)."""
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CacheStore:
    """One cache folder per kind (``fetch``, ...), entries per (identity, key)."""

    root: Path

    def entry(self, kind: str, key: str, credential: Credential | None) -> Path:
        identity = credential_identity(credential)
        digest = hashlib.sha256(f"{identity}\n{key}".encode()).hexdigest()[:32]
        return self.root / kind / identity / digest

    def get_or_fill(self, kind: str, key: str, credential: Credential | None,
                    fill: Callable[[Path], None]) -> Path:
        """The entry's folder; when missing, ``fill(staging)`` builds it in a private staging
        folder that is renamed into place only when ``fill`` returns."""
        place = self.entry(kind, key, credential)
        if place.is_dir() and not place.is_symlink():
            return place
        place.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        remove_partials(place.parent)
        staging = Path(tempfile.mkdtemp(prefix=f".partial-{os.getpid()}-", dir=place.parent))
        try:
            fill(staging)
            try:
                staging.rename(place)
            except OSError:  # another process filled it first: theirs is as good
                if not place.is_dir():
                    raise
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return place


def remove_partials(folder: Path) -> list[Path]:
    """Remove the partial entries of processes that are gone (a killed download)."""
    removed = []
    for entry in folder.glob(".partial-*"):
        pid = entry.name.split("-")[1]
        if pid.isdigit() and pid_exists(int(pid)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed

