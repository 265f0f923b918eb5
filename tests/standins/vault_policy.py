"""Vault's ACL policies for the Vault stand-in: parsing (HCL or JSON) and matching, as Vault does.

What is modelled, from Vault's policy documentation (concepts/policies) and its ``acl.go``:

- a policy is ``path "<pattern>" { capabilities = [...] }`` blocks, in HCL or the equivalent JSON
  (``{"path": {"<pattern>": {"capabilities": [...]}}}``); the legacy ``policy = "read"`` form
  maps to capabilities as Vault maps it; an unknown capability fails the whole policy;
- ``*`` is a prefix glob only as the pattern's last character (elsewhere it is a literal);
  ``+`` stands for exactly one path segment;
- the policies of a token are merged: rules of the same pattern are unioned, and ``deny`` in any
  of them wins; a request then uses ONE rule: an exact pattern if there is one, otherwise the
  highest-priority glob/``+`` pattern that matches (never a union of several patterns);
- priority between two matching non-exact patterns P1, P2 (Vault's "priority matching"): P1 is
  lower if its first ``+`` or ``*`` comes earlier; if it ends in ``*`` and P2 does not; if it has
  more ``+`` segments; if it is shorter; if it is lexically smaller;
- LIST requests are matched with a trailing ``/``, and an exact pattern without it also counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

CAPABILITIES = frozenset({"create", "read", "update", "patch", "delete", "list", "sudo", "deny",
                          "subscribe", "recover"})
#: The pre-0.9 ``policy = "..."`` shorthand, as Vault still expands it.
LEGACY_POLICY = {
    "deny": {"deny"},
    "read": {"read", "list"},
    "write": {"create", "read", "update", "delete", "list"},
    "sudo": {"create", "read", "update", "delete", "list", "sudo"},
}
#: Vault's built-in ``default`` policy (the parts a token uses on itself), attached to every
#: token that is not created with ``no_default_policy``.
DEFAULT_POLICY = """
# Allow tokens to look up their own properties
path "auth/token/lookup-self" { capabilities = ["read"] }
# Allow tokens to renew and revoke themselves
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" { capabilities = ["update"] }
# Allow a token to renew and look up its leases
path "sys/renew" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }
# The token's own cubbyhole
path "cubbyhole/*" { capabilities = ["create", "read", "update", "delete", "list"] }
"""


class PolicyError(ValueError):
    """A policy text Vault would refuse (``failed to parse policy``)."""


Rules = dict[str, frozenset[str]]


def parse_policy(text: str) -> Rules:
    """``{pattern: capabilities}`` of one policy, HCL or JSON; raises PolicyError."""
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise PolicyError(f"failed to parse policy: {e.msg}") from e
    else:
        document = _HclParser(stripped).document()
    if not isinstance(document, dict):
        raise PolicyError("failed to parse policy: not an object")
    unknown = set(document) - {"path", "name"}
    if unknown:
        raise PolicyError(f"failed to parse policy: invalid key {sorted(unknown)[0]!r}")
    paths = document.get("path") or {}
    blocks: list[tuple[str, object]] = []
    for entry in paths if isinstance(paths, list) else [paths]:
        if not isinstance(entry, dict):
            raise PolicyError("failed to parse policy: path must be an object")
        blocks.extend(entry.items())
    rules: dict[str, set[str]] = {}
    for pattern, body in blocks:
        rules.setdefault(pattern, set()).update(_capabilities(pattern, body))
    return {p: frozenset(c) for p, c in rules.items()}


def _capabilities(pattern: str, body: object) -> set[str]:
    if not isinstance(body, dict):
        raise PolicyError(f'failed to parse policy: path "{pattern}": expected an object')
    caps = {str(c).lower() for c in body.get("capabilities") or []}
    legacy = body.get("policy")
    if legacy is not None:
        if legacy not in LEGACY_POLICY:
            raise PolicyError(f'failed to parse policy: path "{pattern}": invalid policy '
                              f'"{legacy}"')
        caps |= LEGACY_POLICY[str(legacy)]
    invalid = sorted(caps - CAPABILITIES)
    if invalid:
        raise PolicyError(f'failed to parse policy: path "{pattern}": invalid capability '
                          f'"{invalid[0]}"')
    return caps


@dataclass(frozen=True)
class _Candidate:
    """A matching non-exact pattern, with the facts Vault ranks them by."""

    first_wildcard: int
    is_prefix: bool
    wildcard_segments: int
    path: str  # the pattern without its trailing '*'
    caps: frozenset[str]

    def rank(self) -> tuple[int, bool, int, int, str]:
        # higher sorts later = wins; each element mirrors one of Vault's priority rules
        return (self.first_wildcard, not self.is_prefix, -self.wildcard_segments,
                len(self.path), self.path)


class Acl:
    """The merged policies of one token; ``capabilities(path)`` as Vault computes them."""

    def __init__(self, policies: Iterable[Rules]) -> None:
        merged: dict[str, set[str]] = {}
        for rules in policies:
            for pattern, caps in rules.items():
                merged.setdefault(pattern, set()).update(caps)
        self.exact: Rules = {}
        self.prefix: Rules = {}  # pattern without its '*'
        self.segment: Rules = {}  # patterns with a '+' (maybe ending in '*')
        for pattern, granted in merged.items():
            final = frozenset({"deny"}) if "deny" in granted else frozenset(granted)
            if "+" in pattern:
                self.segment[pattern] = final
            elif pattern.endswith("*"):
                self.prefix[pattern[:-1]] = final
            else:
                self.exact[pattern] = final

    def capabilities(self, path: str, listing: bool = False) -> frozenset[str]:
        """The capabilities the one governing rule grants on ``path`` (empty: none matches)."""
        path = path.lstrip("/")
        if listing and not path.endswith("/"):
            path += "/"
        if path in self.exact:
            return self.exact[path]
        if listing and path.rstrip("/") in self.exact:
            return self.exact[path.rstrip("/")]
        candidates: list[_Candidate] = []
        prefixes = [p for p in self.prefix if path.startswith(p)]
        if prefixes:  # Vault consults only the longest glob prefix
            longest = max(prefixes, key=len)
            candidates.append(_Candidate(len(longest), True, 0, longest, self.prefix[longest]))
        for pattern, caps in self.segment.items():
            found = _segment_match(pattern, path, caps)
            if found is None and listing:
                found = _segment_match(pattern, path.rstrip("/"), caps)
            if found is not None:
                candidates.append(found)
        if not candidates:
            return frozenset()
        return max(candidates, key=_Candidate.rank).caps


def _segment_match(pattern: str, path: str, caps: frozenset[str]) -> _Candidate | None:
    is_prefix = pattern.endswith("*")
    body = pattern[:-1] if is_prefix else pattern
    want, have = body.split("/"), path.split("/")
    if len(have) < len(want) or (not is_prefix and len(have) != len(want)):
        return None
    wildcards = 0
    for i, part in enumerate(want):
        last_of_prefix = is_prefix and i == len(want) - 1
        if part == "+":
            wildcards += 1
        elif part != have[i] and not (last_of_prefix and have[i].startswith(part)):
            return None
    return _Candidate(pattern.index("+"), is_prefix, wildcards, body, caps)


def format_duration(seconds: int) -> str:
    """A duration as Go prints a time.Duration (``1h0m0s``), as Vault's warnings show it."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def parse_duration(value: object) -> int:
    """Seconds from Vault's duration parameters: ``30``, ``"30"``, ``"30s"``, ``"1h30m"``, ``"2d"``."""
    if value is None or value == "":
        return 0
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise PolicyError(f"invalid duration {text!r}")
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(sum(float(n) * unit[u] for n, u in parts))


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


class _HclParser:
    """Just enough HCL 1 for policies: blocks with string labels, ``key = value`` with strings,
    numbers, booleans, lists and nested objects; ``#``, ``//`` and ``/* */`` comments."""

    TOKEN = re.compile(r'\s+|#[^\n]*|//[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|[{}\[\]=,]|'
                       r"[A-Za-z_][\w.-]*|-?\d+(?:\.\d+)?", re.S)

    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text):
            match = self.TOKEN.match(text, pos)
            if match is None:
                line = text.count("\n", 0, pos) + 1
                raise PolicyError(f"failed to parse policy: unexpected {text[pos]!r} at line "
                                  f"{line}")
            token = match.group()
            if not (token.isspace() or token.startswith(("#", "//", "/*"))):
                self.tokens.append(token)
            pos = match.end()
        self.pos = 0

    def document(self) -> dict[str, object]:
        result: dict[str, object] = {}
        while self.pos < len(self.tokens):
            self._member(result)
        return result

    def _next(self) -> str:
        if self.pos >= len(self.tokens):
            raise PolicyError("failed to parse policy: unexpected end of policy")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def _peek(self) -> str:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ""

    def _member(self, into: dict[str, object]) -> None:
        key = self._next()
        if key.startswith('"'):
            key = json.loads(key)
        elif not re.match(r"[A-Za-z_]", key):
            raise PolicyError(f"failed to parse policy: unexpected {key!r}")
        if self._peek() == "=":
            self._next()
            into[key] = self._value()
            return
        labels: list[str] = []
        while self._peek().startswith('"'):
            labels.append(json.loads(self._next()))
        if self._peek() != "{":
            raise PolicyError(f"failed to parse policy: expected '{{' after {key!r}")
        body = self._object()
        target = into
        for label in [key, *labels[:-1]]:
            nested = target.setdefault(label, {})
            if not isinstance(nested, dict):
                raise PolicyError(f"failed to parse policy: {label!r} given twice")
            target = nested
        last = labels[-1] if labels else None
        if last is None:
            into[key] = body
        elif isinstance(target.get(last), dict):  # the same path twice: merge
            existing = target[last]
            assert isinstance(existing, dict)
            caps = [*_as_list(existing.get("capabilities")), *_as_list(body.get("capabilities"))]
            existing.update(body)
            existing["capabilities"] = caps
        else:
            target[last] = body

    def _object(self) -> dict[str, object]:
        self._next()  # '{'
        result: dict[str, object] = {}
        while self._peek() != "}":
            if not self._peek():
                raise PolicyError("failed to parse policy: missing '}'")
            self._member(result)
            if self._peek() == ",":
                self._next()
        self._next()
        return result

    def _value(self) -> object:
        token = self._peek()
        if token == "[":
            self._next()
            items: list[object] = []
            while self._peek() != "]":
                if not self._peek():
                    raise PolicyError("failed to parse policy: missing ']'")
                items.append(self._value())
                if self._peek() == ",":
                    self._next()
            self._next()
            return items
        if token == "{":
            return self._object()
        token = self._next()
        if token.startswith('"'):
            return json.loads(token)
        if token in ("true", "false"):
            return token == "true"
        if re.fullmatch(r"-?\d+(?:\.\d+)?", token):
            return float(token) if "." in token else int(token)
        raise PolicyError(f"failed to parse policy: unexpected {token!r}")
