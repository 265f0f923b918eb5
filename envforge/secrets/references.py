"""Secret references: ``vault:<mount>/<path>#<key>[@<version>]``, e.g.
``vault:kv/app/db#password@3``.

A reference names where a value lives, never the value, so it may appear in templates, project
files, logs and Git. The first path segment is the KV mount (``kv``), the rest the secret's path
inside it (``app/db``); ``#key`` picks one field; ``@N`` pins KV v2 version N.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from envforge.errors import SecretReferenceError

PREFIX = "vault:"
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_REFERENCE = re.compile(
    rf"^vault:(?P<mount>{_SEGMENT})/(?P<path>{_SEGMENT}(?:/{_SEGMENT})*)"
    r"#(?P<key>[A-Za-z0-9_.-]+)(?:@(?P<version>[0-9]+))?$"
)
FORM = "vault:<mount>/<path>#<key>[@<version>], e.g. vault:kv/app/db#password@3"


@dataclass(frozen=True)
class SecretReference:
    """Where one secret value lives in Vault's KV engine."""

    mount: str
    path: str
    key: str
    version: int | None = None

    @property
    def location(self) -> str:
        """``mount/path`` (plus ``@version``): what Vault reads, shared by every key in it."""
        suffix = f"@{self.version}" if self.version is not None else ""
        return f"{self.mount}/{self.path}{suffix}"

    def __str__(self) -> str:
        suffix = f"@{self.version}" if self.version is not None else ""
        return f"{PREFIX}{self.mount}/{self.path}#{self.key}{suffix}"


def looks_like_reference(value: Any) -> bool:
    """True for any string starting ``vault:`` (well-formed or not)."""
    return isinstance(value, str) and value.strip().startswith(PREFIX)


def parse_reference(text: str, where: str = "value") -> SecretReference:
    """Parse ``text``; a malformed reference raises naming ``where`` and the expected form."""
    candidate = text.strip()
    match = _REFERENCE.match(candidate)
    if match is None:
        raise SecretReferenceError(
            f"{where}: {candidate!r} is not a valid secret reference; expected {FORM}"
        )
    path = match["path"]
    if any(part in (".", "..") for part in path.split("/")):
        raise SecretReferenceError(f"{where}: {candidate!r}: '.' and '..' are not allowed in paths")
    version = int(match["version"]) if match["version"] is not None else None
    if version == 0:
        raise SecretReferenceError(
            f"{where}: {candidate!r}: versions start at 1; leave '@' out for the latest"
        )
    return SecretReference(match["mount"], path, match["key"], version)


def find_references(value: Any, where: str = "input") -> list[tuple[str, str]]:
    """Every (field path, text) inside a nested value that is, or contains, a ``vault:``
    reference or a ``secret:`` marker; used to refuse secrets in fields bound for Git."""
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        if PREFIX in value or value.startswith("secret:"):
            found.append((where, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            found += find_references(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found += find_references(v, f"{where}[{i}]")
    elif value is not None and not isinstance(value, int | float) and str(value).startswith(
        "secret:"
    ):  # the runner's SecretRef for ${{ secrets.NAME }} prints as secret:NAME
        found.append((where, str(value)))
    return found


def refuse_references_in_git_fields(value: Any, where: str) -> None:
    """Raise when ``value`` (something that will be committed) holds a secret reference."""
    found = find_references(value, where)
    if found:
        fields = ", ".join(path for path, _ in found)
        raise SecretReferenceError(
            f"{fields}: secret references are not allowed in fields that end up in Git; "
            "declare the secret as a variable of the vault:secrets step and refer to the "
            "delivered Secret by name (envFrom/secretKeyRef)"
        )
