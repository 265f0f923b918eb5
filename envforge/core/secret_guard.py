"""The guard against secrets in Git: before every commit, staged files are scanned for the
values of secrets known to the run and for obvious credential patterns. A hit refuses the
commit and names the file and what was found, never the value itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from envforge.errors import SecretInGitError

#: (what it is, pattern). Deliberately "obvious" credentials only, to keep false alarms rare.
CREDENTIAL_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("a private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("an AWS secret access key",
     re.compile(r"aws_secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}", re.I)),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,})")),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Vault token", re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{24,}")),
    ("a password in a URL", re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")),
]
#: Secret values shorter than this are not searched for: they would match everywhere.
MIN_SECRET_LENGTH = 6
MAX_SCAN_BYTES = 2_000_000


def scan_text(text: str, known_secrets: Iterable[str] = (),
              scrub: Callable[[str], str] | None = None) -> list[str]:
    """What in ``text`` looks like a secret: known values (or what ``scrub`` masks), then
    credential patterns. Returns descriptions, never the matched text."""
    found: list[str] = []
    if any(len(v) >= MIN_SECRET_LENGTH and v in text for v in known_secrets) or (
            scrub is not None and scrub(text) != text):
        found.append("the value of a secret known to this run")
    found.extend(what for what, pattern in CREDENTIAL_PATTERNS if pattern.search(text))
    return found


class SecretGuard:
    """A pre-commit hook for GitPublisher: raises SecretInGitError naming each bad file."""

    def __init__(self, known_secrets: Iterable[str] = (),
                 scrub: Callable[[str], str] | None = None) -> None:
        self.known_secrets = [v for v in known_secrets if v]
        self.scrub = scrub

    def __call__(self, root: Path, staged: list[str]) -> None:
        hits: list[str] = []
        for rel in staged:
            file = root / rel
            if not file.is_file():  # a removal: nothing to scan
                continue
            text = file.read_bytes()[:MAX_SCAN_BYTES].decode("utf-8", errors="replace")
            found = scan_text(text, self.known_secrets, self.scrub)
            if found:
                hits.append(f"{rel} ({', '.join(found)})")
        if hits:
            raise SecretInGitError(
                "refusing to commit: " + "; ".join(hits) + ". Keep secrets in Vault and "
                "reference them (vault:secrets / ExternalSecret); nothing was committed")


def default_guard(scrub: Callable[[str], str] | None = None,
                  known_secrets: Iterable[str] = ()) -> SecretGuard:
    """The guard with ``scrub``, the scrubber of the secret values fetched in this process
    (the services carry it: ``Services.scrub``), and any ``known_secrets``."""
    return SecretGuard(known_secrets, scrub)
