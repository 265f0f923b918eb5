"""Which Vault paths a template may read: a capability the composition root hands down.

The worker's Vault token can usually read far more than any one template should: every
team's secrets. A template (and a developer filling its form) names Vault references, so
without a scope any template could read another team's secret and deliver it into its own
namespace, where its own pods read it. A template may read only the paths the operator gave
it: ``ENVFORGE_VAULT_TEMPLATE_PATHS`` (settings ``vault.template_paths``), patterns over
``mount/path`` in which ``{template}`` stands for the template's name, ``*`` matches within one
path segment and ``**`` any number of segments. The default, ``*/{template}/**``, gives each
template its own folder in every mount (``kv/preview-app/api`` for preview-app). The operator's
own references (the anonymisation key, ``vars explain``) are not a template's and are not
scoped here.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

DEFAULT_TEMPLATE_PATHS = ("*/{template}/**",)


def _segments_match(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_segments_match(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], head) and _segments_match(rest, path[1:])


def _literal(name: str) -> str:
    """``name`` with the glob characters it may hold made literal."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


@dataclass(frozen=True)
class VaultScope:
    """The Vault paths (``mount/path``) templates may read."""

    patterns: tuple[str, ...] = DEFAULT_TEMPLATE_PATHS

    def allows(self, location: str, template: str) -> bool:
        """Whether ``template`` may read ``location`` (``mount/path``, no version)."""
        path = [p for p in location.split("/") if p]
        return any(_segments_match(pattern.replace("{template}", _literal(template)).split("/"),
                                   path)
                   for pattern in self.patterns)

    def check(self, location: str, template: str, where: str, error: type[Exception]) -> None:
        """Raise ``error`` (one line, naming the path, never a value) unless allowed."""
        if not self.allows(location, template):
            allowed = ", ".join(p.replace("{template}", template) for p in self.patterns)
            raise error(
                f"{where}: Vault path {location!r} is not one template {template!r} may read "
                f"(it may read {allowed or 'nothing'}); keep its secrets there, or have the "
                "operator add a pattern to ENVFORGE_VAULT_TEMPLATE_PATHS")
