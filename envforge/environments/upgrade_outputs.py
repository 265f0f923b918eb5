"""Carrying an environment's recorded outputs into its upgrade.

An upgrade re-renders an environment's files from the current template without running the
steps that change things (image builds, database clones, Vault reads, Secret delivery): the
render-only run fakes their outputs (``dry-run:image:build.image``), so a file that uses one
(a Deployment's image) would name a placeholder. What those steps made is recorded in the
environment's files in Git, though: the image digest in the Deployment, the database and the
delivered Secret names in the ConfigMap and ``envFrom``. When the steps' inputs did not change,
their outputs did not either, so the upgrade reads each placeholder's value back from the line
the current files hold in the same place (:func:`carry_forward`) and keeps the files such a
step wrote (the ConfigMap of ``vault:secrets``). A step whose inputs did change must run again
(``env update``); :func:`changed_inputs` names what changed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: What a render-only run leaves where a skipped step's output is used (actions.base.fake_output
#: and runner.PlaceholderOutput); group 1 or 2 is the action's id.
FAKED = re.compile(r"dry-run:([a-z0-9:_-]+)\.\w+|<([a-z0-9:_-]+) output \w+ \(dry run\)>")


@dataclass
class Carried:
    """The upgraded files with recorded outputs in place of placeholders, and what was done."""

    files: dict[str, str]
    #: placeholder -> the value read back from the current files
    values: dict[str, str] = field(default_factory=dict)
    #: files the current environment has, the render lacks, and a skipped step wrote: kept
    kept: list[str] = field(default_factory=list)
    #: actions whose placeholders could not be read back (their output would be a placeholder)
    unresolved: list[str] = field(default_factory=list)


def _action_of(match: re.Match[str]) -> str:
    return match.group(1) or match.group(2)


def _line_pattern(line: str) -> tuple[re.Pattern[str], list[str]] | None:
    """A regex matching ``line`` with each placeholder as a capture group (the same
    placeholder twice must be the same value), and the placeholders in group order."""
    parts: list[str] = []
    tokens: list[str] = []
    seen: dict[str, int] = {}
    last = 0
    for match in FAKED.finditer(line):
        parts.append(re.escape(line[last:match.start()]))
        token = match.group(0)
        if token in seen:
            parts.append(f"(?P=t{seen[token]})")
        else:
            seen[token] = len(tokens)
            parts.append(f"(?P<t{len(tokens)}>.+?)")
            tokens.append(token)
        last = match.end()
    if not tokens:
        return None
    parts.append(re.escape(line[last:]))
    return re.compile("".join(parts)), tokens


def _aligned_lines(old: list[str], new: list[str]) -> Iterable[tuple[int, list[str]]]:
    """For each line of ``new`` that differs from ``old``: its index and the lines of ``old``
    it replaces (difflib's alignment), so a placeholder is read from the line in its place."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "replace":
            for j in range(j1, j2):
                if i2 - i1 == j2 - j1:  # one for one: the line in the same place
                    yield j, [old[i1 + j - j1]]
                else:
                    yield j, old[i1:i2]
        elif tag == "insert":
            for j in range(j1, j2):
                yield j, []


def read_back(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, set[str]]:
    """Placeholder -> every value the current files (``old``) hold where the rendered files
    (``new``) have it."""
    found: dict[str, set[str]] = {}
    for path, text in new.items():
        if not FAKED.search(text):
            continue
        new_lines = text.splitlines()
        old_lines = old.get(path, "").splitlines()
        for index, candidates in _aligned_lines(old_lines, new_lines):
            pattern = _line_pattern(new_lines[index])
            if pattern is None:
                continue
            regex, tokens = pattern
            for token in tokens:
                found.setdefault(token, set())
            for candidate in candidates:
                match = regex.fullmatch(candidate)
                if match is None:
                    continue
                for i, token in enumerate(tokens):
                    value = match.group(f"t{i}")
                    if not FAKED.search(value):
                        found[token].add(value)
    return found


def carry_forward(old: Mapping[str, str], new: Mapping[str, str],
                  writers_skipped: bool = False, under: str = "") -> Carried:
    """``new`` with each placeholder replaced by the one value ``old`` holds in its place.

    A placeholder with no value, or with two different ones, is unresolved (its action is
    listed). With ``writers_skipped`` (a skipped step writes files of its own, as
    ``vault:secrets`` writes its ConfigMap), the files under ``under`` that ``old`` has and
    ``new`` lacks are kept as they are."""
    values: dict[str, str] = {}
    unresolved: set[str] = set()
    for token, found in read_back(old, new).items():
        if len(found) == 1:
            values[token] = next(iter(found))
        else:
            match = FAKED.fullmatch(token)
            unresolved.add(_action_of(match) if match else token)
    files: dict[str, str] = {}
    for path, text in new.items():
        files[path] = FAKED.sub(lambda m: values.get(m.group(0), m.group(0)), text)
    kept = []
    if writers_skipped:
        kept = sorted(p for p in old if p not in new and p.startswith(under))
        files.update({p: old[p] for p in kept})
    return Carried(files, values, kept, sorted(unresolved))


def faked_actions(files: Mapping[str, str]) -> set[str]:
    """The actions whose placeholders ``files`` hold."""
    return {_action_of(m) for text in files.values() for m in FAKED.finditer(text)}


def changed_inputs(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The input fields of a step that differ between two renderings (names, not values:
    an input may hold something not fit for a message)."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
