"""Which version of a template made an environment.

A template that declares ``metadata.version`` is known by it; every template is also known by
the sha256 of its directory's files (names and bytes), so an edit without a version bump is
still seen. The envforge release is kept beside them: a new release can render differently.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from envforge import __version__
from envforge.gitops.record import TemplateVersion
from envforge.templating.model import Template

#: Not part of a template's content (caches, editor and VCS leftovers).
_IGNORED_PARTS = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def template_digest(directory: Path) -> str:
    """``sha256:<hex>`` over every file of ``directory`` (relative path and bytes, in order)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = file.relative_to(directory)
        if _IGNORED_PARTS.intersection(rel.parts) or file.suffix == ".pyc":
            continue
        digest.update(rel.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return f"sha256:{digest.hexdigest()}"


def declared_version(template: Template) -> str | None:
    """The template's ``metadata.version`` (Backstage keeps unknown metadata keys), if any."""
    value = (template.metadata.model_extra or {}).get("version")
    return None if value is None else str(value)


def template_version(template: Template) -> TemplateVersion:
    """What a record stores as the version of ``template`` that rendered it."""
    return TemplateVersion(version=declared_version(template),
                           digest=template_digest(template.directory),
                           envforge=__version__)


def describe_version(version: TemplateVersion | None) -> str:
    """Short form for lists and diffs: ``1.2.0 (sha256:0123abcd…)`` or ``unknown``."""
    if version is None:
        return "unknown"
    short = version.digest.split(":", 1)[-1][:12]
    return f"{version.version} ({short})" if version.version else short
