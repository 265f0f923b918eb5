"""What every provider publisher shares: the input every one takes (Backstage's names), the
provider client of one step, git under that client's credentials, copying the workspace into
a working copy through the file API, and the strict checks of owner and repository names.

Used by publish:github / publish:gitlab (envforge.actions.publish_providers), their pull and
merge-request forms (envforge.actions.publish_change_requests), publish:azure and
github:webhook.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from envforge.actions.base import ActionContext, ActionInput
from envforge.capabilities import (
    ProviderEndpoint,
    WorkspaceFiles,
    check_path,
)
from envforge.capabilities.providers import ProviderClient, provider_client
from envforge.core.git_boundary import run_git
from envforge.core.retry import retry_temporary
from envforge.errors import ActionError, CapabilityError, GitError, RetriesExhaustedError
from envforge.templating.filters import parse_repo_url

_GIT_TIMEOUT_S = 300.0
#: GitHub: owner 1-39 of [A-Za-z0-9-]; repository 1-100 of [A-Za-z0-9._-]. GitLab paths: the
#: same characters, groups nested with '/'. Never '.' or '..' alone, never '.git' at the end.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")


class ProviderInput(ActionInput):
    # Backstage's publishers take many provider options envforge does not use: accepted, ignored
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    repoUrl: str = Field(description="host?owner=<owner>&repo=<repo> (RepoUrlPicker).")
    token: str | None = Field(None, description="Provider token (else the setting).")
    sourcePath: str = Field(".", description="Workspace folder to publish.")
    gitAuthorName: str = "envforge"
    gitAuthorEmail: str = "envforge@localhost"

    @field_validator("token", mode="before")
    @classmethod
    def _names_are_not_tokens(cls, value: Any) -> Any:
        # ${{ secrets.X }} renders a name, never a value: the setting supplies the token
        return value if isinstance(value, str) and not value.startswith("secret:") else None


def open_client(ctx: ActionContext, provider: str, token: str | None, step: str
                ) -> ProviderClient:
    """The provider client of one step: the configured endpoint (never the template's
    host), the step's token or the operator's, through the run's egress capability."""
    endpoint = ctx.capabilities.provider(provider)
    return provider_client(endpoint, ctx.capabilities.egress, token, step)


def provider_git(args: list[str], cwd: Path, client: ProviderClient) -> str:
    """One git command with the client's token for the configured Git origin. A network
    failure (refused, reset, timed out, a 5xx: the temporary GitUnreachableError) is retried
    under the client's retry policy (envforge.core.retry, the one retry layer); what outlasts
    it, and any refusal, is the step's one-line ActionError."""
    what = f"{client.what}: git {args[0]}"

    def once(_: int) -> str:
        return run_git(args, cwd=cwd, extra_config=client.git_config(),
                       timeout=_GIT_TIMEOUT_S, secrets=[client.token], what=what)

    try:
        return retry_temporary(once, client.retry, what,
                               "the Git server did not answer; run again later",
                               sleep=client.sleep)
    except (GitError, RetriesExhaustedError) as e:
        raise ActionError(str(e)) from None


def commit_all(repo: Path, params: ProviderInput, message: str, client: ProviderClient
                ) -> str:
    ident = ["-c", f"user.name={params.gitAuthorName}", "-c",
             f"user.email={params.gitAuthorEmail}"]
    provider_git(["add", "--all"], repo, client)
    provider_git([*ident, "commit", "--quiet", "--allow-empty", "-m", message], repo, client)
    return provider_git(["rev-parse", "HEAD"], repo, client)


def copy_into(ctx: ActionContext, source_rel: str, work: Path, target_rel: str,
               describe: str) -> None:
    """The workspace's files under ``source_rel`` into ``work``/``target_rel`` through the
    file API: no link of the target repository is followed, ``.git`` is never written."""
    target = WorkspaceFiles(work, ctx.capabilities.file_budget, describe)
    try:
        target.copy_tree(ctx.files, source_rel, target_rel)
    except CapabilityError as e:
        raise ActionError(f"step {ctx.step_id!r}: {e}") from None


def check_name(value: str, what: str, step: str, nested: bool = False) -> str:
    parts = value.split("/") if nested else [value]
    for part in parts:
        if not _NAME.fullmatch(part) or part.lower().endswith((".git", ".atom")):
            raise ActionError(
                f"{step}: repoUrl {what} {value!r} is not a valid name (letters, digits, '.', "
                "'_', '-'; no '/', '..' or '.git' ending); name the repository plainly")
    return value


def check_host(parts: dict[str, str], step: str, endpoint: ProviderEndpoint) -> None:
    """A ``repoUrl`` names the configured provider's host or nothing is sent: the token goes
    only where the operator configured it."""
    host = parts["host"].lower().rstrip(".")
    if host != endpoint.host:
        raise ActionError(
            f"{step}: repoUrl host {host!r} is not the configured {endpoint.provider} host "
            f"{endpoint.host!r} (ENVFORGE_{endpoint.provider.upper()}_HOST); the token goes "
            "only to the configured provider")


def owner_repo(params: ProviderInput, step: str, endpoint: ProviderEndpoint
               ) -> tuple[str, str]:
    """(owner, repository) of ``repoUrl``, on the configured host, strictly checked."""
    parts = parse_repo_url(params.repoUrl)
    owner = parts.get("owner") or parts.get("organization") or ""
    if not owner:
        raise ActionError(f"{step}: repoUrl {params.repoUrl!r} names no owner")
    check_host(parts, step, endpoint)
    nested = endpoint.provider == "gitlab"
    return (check_name(owner, "owner", step, nested),
            check_name(parts.get("repo", ""), "repo", step))


def source_rel_path(path: str, step: str) -> str:
    try:
        return "/".join(check_path(path, f"{step} sourcePath"))
    except CapabilityError as e:
        raise ActionError(str(e)) from None
