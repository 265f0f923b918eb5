"""What a clone is asked to do and what it reports, apart from the clone machinery itself.

A branch of a fresh golden only needs these (and the golden's identity): keeping them here
lets ``envforge db branch`` start without importing the classifier, the transformers and the
copy code, which only a rebuild uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from envforge.db.connection import ServerAddress

if TYPE_CHECKING:  # the rules' models load when rules are parsed: a branch's source read and
    from envforge.db.rules import Rules  # its session start overlap that import

log = logging.getLogger("envforge.db")

# Tables larger than this are copied in ctid slices (envforge.db.tasks).
CHUNK_BYTES = 24 * 1024 * 1024


@dataclass
class CloneRequest:
    source: ServerAddress
    target: ServerAddress  # server and the target database name
    rules: Rules
    key: bytes = field(repr=False)
    jobs: int = 2
    replace: bool = False
    marker: dict[str, Any] = field(default_factory=dict)  # written into the ownership comment
    rules_source: str = "rules"
    # Below this much data one lane is faster than starting worker interpreters.
    parallel_min_bytes: int = 2 * CHUNK_BYTES


@dataclass
class CloneReport:
    database: str
    rows: int
    bytes: int
    seconds: float
    tables: dict[str, int]  # logical table -> rows copied
    subset: bool
    # What a clone does not carry over, said once (owners, grants): see docs/databases.md.
    not_copied: list[str] = field(default_factory=list)
