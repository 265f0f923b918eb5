"""Capabilities: what an action or a template is handed, and all it can reach.

An action gets, through :class:`~envforge.actions.base.ActionContext`, one
:class:`Capabilities`: an egress policy (the one HTTP client, URLs parsed and allowlisted,
credentials bound to their origin, budgets per transfer), a workspace file API (openat-style,
no link followed, never ``.git``, budgets), caches keyed by the credential that filled them,
the configured Git providers, and the run's budgets. The composition root (the CLI and the
flows) builds it once from the settings; nothing below reads the environment for it. Import
contracts (pyproject.toml) keep actions and templating from reaching the network, files or
processes any other way. docs/security.md states the trust model per capability.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from envforge.capabilities.budgets import CloneBudget, RunBudget, int_setting
from envforge.capabilities.caches import CacheStore, credential_identity, token_id
from envforge.capabilities.egress import (
    AllowRule,
    Answer,
    Credential,
    EgressClient,
    EgressPolicy,
    Origin,
    ParsedUrl,
    Transfer,
    TransferBudget,
    parse_url,
    quote_segment,
)
from envforge.capabilities.files import FileBudget, WorkspaceFiles, check_path, is_git_name
from envforge.capabilities.image_sources import DEFAULT_SOURCES, SourceScope
from envforge.capabilities.providers import ProviderEndpoint
from envforge.capabilities.vault_scope import DEFAULT_TEMPLATE_PATHS, VaultScope

if TYPE_CHECKING:
    from envforge.settings import EnvforgeSettings

__all__ = [
    "AllowRule", "Answer", "CacheStore", "Capabilities", "Credential", "EgressClient",
    "EgressPolicy", "FileBudget", "Origin", "ParsedUrl", "ProviderEndpoint", "RunBudget",
    "SourceScope", "Transfer", "TransferBudget", "VaultScope", "WorkspaceFiles", "check_path",
    "credential_identity",
    "default_capabilities", "is_git_name", "parse_url", "quote_segment", "token_id",
]


@dataclass(frozen=True)
class Capabilities:
    """Everything an action may use to reach outside its own memory."""

    egress: EgressPolicy = field(default_factory=EgressPolicy.deny_all)
    caches: CacheStore = field(default_factory=lambda: CacheStore(
        Path.home() / ".envforge" / "cache"))
    file_budget: FileBudget = field(default_factory=FileBudget)
    providers: Mapping[str, ProviderEndpoint] = field(default_factory=dict)
    run_budget: RunBudget = field(default_factory=RunBudget)
    #: the Vault paths a template may read (envforge.capabilities.vault_scope)
    vault_scope: VaultScope = field(default_factory=VaultScope)
    #: the repositories a template's image:build may read (envforge.capabilities.image_sources)
    image_sources: SourceScope = field(default_factory=SourceScope)

    def files(self, root: Path, describe: str = "workspace") -> WorkspaceFiles:
        """A file API rooted at ``root`` with this run's file budget."""
        return WorkspaceFiles(root, self.file_budget, describe)

    def provider(self, name: str) -> ProviderEndpoint:
        """The configured endpoint of ``name`` (github, gitlab); defaults when unset."""
        return self.providers.get(name) or ProviderEndpoint.configure(name)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], cache_dir: Path) -> Capabilities:
        """Built from ``ENVFORGE_*`` variables (the composition root passes its settings'
        environment): deny-by-default egress, default budgets."""
        import re

        def listed(name: str) -> list[str]:
            return [p for p in re.split(r"[\s,]+", environ.get(name, "")) if p]

        transfer = TransferBudget(
            max_bytes=int_setting(environ, "ENVFORGE_FETCH_MAX_BYTES", 50 * 1024 * 1024),
            deadline_seconds=float(int_setting(environ, "ENVFORGE_FETCH_TIMEOUT_S", 120)),
            max_entries=int_setting(environ, "ENVFORGE_FETCH_MAX_ENTRIES", 20_000))
        egress = EgressPolicy.from_entries(listed("ENVFORGE_FETCH_ALLOW"),
                                           listed("ENVFORGE_EGRESS_PRIVATE_HOSTS"), transfer)
        providers = {
            name: ProviderEndpoint.configure(
                name, environ.get(f"ENVFORGE_{name.upper()}_HOST") or None,
                environ.get(f"ENVFORGE_{name.upper()}_API_URL") or None,
                environ.get(f"ENVFORGE_{name.upper()}_GIT_URL") or None,
                environ.get(f"ENVFORGE_{name.upper()}_TOKEN") or None,
                tuple(listed(f"ENVFORGE_{name.upper()}_WEBHOOK_REPOSITORIES")))
            for name in ("github", "gitlab", "azure")}
        files = FileBudget(
            max_files=int_setting(environ, "ENVFORGE_MAX_FILES", 20_000),
            max_bytes=int_setting(environ, "ENVFORGE_MAX_WRITE_BYTES", 512 * 1024 * 1024),
            max_depth=int_setting(environ, "ENVFORGE_MAX_DEPTH", 32))
        budget = RunBudget(
            max_each_items=int_setting(environ, "ENVFORGE_MAX_EACH_ITEMS", 1_000),
            max_task_runs=int_setting(environ, "ENVFORGE_MAX_TASK_RUNS", 2_000),
            max_string_length=int_setting(environ, "ENVFORGE_MAX_STRING_LENGTH", 10_000),
            clone=CloneBudget(
                int_setting(environ, "ENVFORGE_CLONE_MAX_BYTES", 100 * 1024 * 1024),
                int_setting(environ, "ENVFORGE_CLONE_MAX_ENTRIES", 20_000),
                float(int_setting(environ, "ENVFORGE_CLONE_TIMEOUT_S", 120))))
        vault = VaultScope(tuple(listed("ENVFORGE_VAULT_TEMPLATE_PATHS"))
                           or DEFAULT_TEMPLATE_PATHS)
        sources = SourceScope(tuple(listed("ENVFORGE_IMAGE_SOURCES")) or DEFAULT_SOURCES)
        return cls(egress, CacheStore(cache_dir), files, providers, budget, vault, sources)

    @classmethod
    def from_settings(cls, settings: EnvforgeSettings) -> Capabilities:
        """Built from the typed settings (what the composition root does): deny-by-default
        egress unless ``fetch.allow`` lists prefixes, the budgets of ``fetch`` and
        ``budgets``, the providers' endpoints, caches under the envforge home."""
        fetch, budgets, found = settings.fetch, settings.budgets, settings.providers
        transfer = TransferBudget(max_bytes=fetch.max_bytes,
                                  deadline_seconds=float(fetch.timeout_seconds),
                                  max_entries=fetch.max_entries)
        egress = EgressPolicy.from_entries(fetch.allow, fetch.private_hosts, transfer)
        github, gitlab, azure = found.github_token, found.gitlab_token, found.azure_token
        providers = {
            "azure": ProviderEndpoint.configure(
                "azure", found.azure_host, found.azure_api_url, found.azure_git_url,
                azure.get_secret_value() if azure else None),
            "github": ProviderEndpoint.configure(
                "github", found.github_host, found.github_api_url, found.github_git_url,
                github.get_secret_value() if github else None,
                found.github_webhook_repositories),
            "gitlab": ProviderEndpoint.configure(
                "gitlab", found.gitlab_host, found.gitlab_api_url, found.gitlab_git_url,
                gitlab.get_secret_value() if gitlab else None)}
        files = FileBudget(max_files=budgets.max_files, max_bytes=budgets.max_write_bytes,
                           max_depth=budgets.max_depth)
        budget = RunBudget(max_each_items=budgets.max_each_items,
                           max_task_runs=budgets.max_task_runs,
                           max_string_length=budgets.max_string_length,
                           clone=CloneBudget(settings.clone.max_bytes, settings.clone.max_entries,
                                             float(settings.clone.timeout_seconds)))
        return cls(egress, CacheStore(settings.cache_dir), files, providers, budget,
                   VaultScope(settings.vault.template_paths),
                   SourceScope(settings.images.sources))


def default_capabilities() -> Capabilities:
    """What an ActionContext gets when its caller handed none (a library call outside the
    composition roots): the process's settings, deny-by-default."""
    from envforge.settings import load_settings

    return Capabilities.from_settings(load_settings())
