"""Backstage's ``publish:azure``: create an Azure DevOps Git repository and push the workspace
to it, with Backstage's input names and outputs.

``repoUrl`` is Backstage's ``dev.azure.com?organization=<org>&project=<project>&repo=<repo>``;
its host must be the configured Azure DevOps host (``ENVFORGE_AZURE_HOST`` / a
GitProviderToken block; default dev.azure.com), and the API and Git origins are the
configured ones, never the template's. The repository is created with Azure DevOps' REST API
(``POST {api}/{org}/{project}/_apis/git/repositories?api-version=7.1``) through the one
provider client (envforge.capabilities.providers), then the workspace is pushed over HTTPS
with the token as git's Basic header bound to the configured Git origin. The ``remoteUrl``
Azure DevOps answers carries the organization as a user name (``https://org@dev.azure.com/
...``): git pushes to it without that name, and only if it lies under the configured Git base.

The create/push/rollback sequence is envforge.actions.publish_repository's (shared with
publish:github and publish:gitlab): the repository is recorded in the run's ledger before the
request and with the id Azure DevOps answered after it, and deleted again (by that id) if the
push fails, on rollback, or by the next create after a kill; nothing else is ever deleted.
``signCommit`` is refused (no signing key is configured in envforge), as Backstage refuses it
without one.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionOutput
from envforge.actions.publish_common import (
    ProviderInput,
    check_host,
    open_client,
    source_rel_path,
)
from envforge.actions.publish_repository import (
    AZURE_API_VERSION,
    CreatedRepository,
    publish_new_repository,
    remove_created,
)
from envforge.capabilities import quote_segment
from envforge.capabilities.providers import ProviderClient
from envforge.errors import ActionError
from envforge.templating.filters import parse_repo_url

API_VERSION = AZURE_API_VERSION
#: Azure DevOps: organization names are letters, digits and '-'; project and repository names
#: up to 64 characters, none of its reserved ones, no leading '_' or '.', no trailing '.'
_ORGANIZATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,49}")
_RESERVED = set('/:\\~&%;@\'"?<>|#$*}{,+=[]')
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class PublishAzureInput(ProviderInput):
    description: str | None = Field(None, description="Repository description (unused by "
                                    "Azure DevOps' create call, as in Backstage).")
    defaultBranch: str = Field("master", description="Branch the workspace is pushed to.")
    gitCommitMessage: str = Field("initial commit", description="Message of the commit.")
    signCommit: bool = Field(False, description="Sign the commit (refused: no signing key).")


class PublishAzureOutput(ActionOutput):
    remoteUrl: str = Field(description="The repository's Git URL, as Azure DevOps answered.")
    repoContentsUrl: str = Field(description="The repository's web URL.")
    repositoryId: str = Field(description="The id of the created repository.")
    commitHash: str = Field(description="The pushed commit.")
    #: what this run created, ``org/project`` (rollback deletes only repositoryId there)
    createdIn: str | None = None


def _check_azure_name(value: str, what: str, step: str) -> str:
    if not value or len(value) > 64 or any(c in _RESERVED or ord(c) < 32 for c in value) \
            or value.startswith(("_", ".")) or value.endswith(".") or ".." in value:
        raise ActionError(f"{step}: repoUrl {what} {value!r} is not a valid Azure DevOps name "
                          "(at most 64 characters, none of / \\ : ~ & % ; @ ' \" ? < > | # $ * "
                          "{ } , + = [ ], no leading '_' or '.', no trailing '.')")
    return value


class PublishAzure(Action[PublishAzureInput, PublishAzureOutput]):
    id = "publish:azure"
    description = ("Initialize a git repository of the workspace content and publish it to "
                   "Azure DevOps.")
    input_model = PublishAzureInput
    output_model = PublishAzureOutput
    git_bound = True
    examples = [{"id": "publish", "name": "Publish to Azure", "action": "publish:azure",
                 "input": {"repoUrl": "dev.azure.com?organization=acme&project=shop"
                                      "&repo=${{ parameters.name }}",
                           "defaultBranch": "main"}}]

    def run(self, ctx: ActionContext, params: PublishAzureInput) -> PublishAzureOutput:
        step = f"step {ctx.step_id!r} ({self.id})"
        if params.signCommit:
            raise ActionError(f"{step}: signCommit is on but no commit signing key is "
                              "configured; leave signCommit out")
        client = open_client(ctx, "azure", params.token, step)
        try:
            organization, project, repo = _location(params, step, client)
            source_rel = source_rel_path(params.sourcePath, step)
            web: list[str] = []

            def create() -> CreatedRepository:
                answer = client.call(
                    "POST", f"/{organization}/{quote_segment(project)}/_apis/git/repositories",
                    params={"api-version": API_VERSION}, json={"name": repo})
                created = CreatedRepository(
                    "azure", f"{organization}/{project}/{repo}",
                    f"{organization}/{project}/{answer.get('name', '')}",
                    str(answer.get("remoteUrl") or ""), "",
                    id=_repository_id(answer, step), location=f"{organization}/{project}")
                web.append(str(answer.get("webUrl") or ""))
                if str(answer.get("name", "")).lower() != repo.lower():
                    remove_created(ctx, client, created)  # not ours as asked: deleted by id
                    raise ActionError(f"{step}: Azure DevOps created {answer.get('name')!r}, "
                                      f"not {repo!r}")
                return created

            created, commit, push_url = publish_new_repository(
                ctx, client, params, source_rel, f"{organization}/{project}/{repo}", create,
                params.defaultBranch, params.gitCommitMessage)
        finally:
            client.close()
        ctx.logger.info("published %s/%s/%s (%s)", organization, project, repo, commit[:12])
        assert created.id is not None
        return PublishAzureOutput(remoteUrl=created.clone_url,
                                  repoContentsUrl=web[0] or push_url,
                                  repositoryId=created.id, commitHash=commit,
                                  createdIn=f"{organization}/{project}")

    def rollback(self, ctx: ActionContext, params: PublishAzureInput,
                 output: PublishAzureOutput) -> None:
        if not output.createdIn:
            return  # this run recorded creating nothing: nothing of it is deleted
        step = f"rollback {ctx.step_id!r} ({self.id})"
        client = open_client(ctx, "azure", params.token, step)
        try:
            organization, project, repo = _location(params, step, client)  # the ledger's key
            remove_created(ctx, client, CreatedRepository(
                "azure", f"{organization}/{project}/{repo}", f"{output.createdIn}/{repo}", "",
                "", id=_repository_id({"id": output.repositoryId}, step),
                location=output.createdIn))
        finally:
            client.close()


def _location(params: PublishAzureInput, step: str, client: ProviderClient
              ) -> tuple[str, str, str]:
    """(organization, project, repo) of ``repoUrl``, on the configured host only."""
    parts = parse_repo_url(params.repoUrl)
    check_host(parts, step, client.endpoint)
    organization = parts.get("organization", "")
    if not organization:
        raise ActionError(f"{step}: repoUrl {params.repoUrl!r} is missing organization "
                          "(dev.azure.com?organization=<org>&project=<project>&repo=<repo>)")
    if not _ORGANIZATION.fullmatch(organization):
        raise ActionError(f"{step}: repoUrl organization {organization!r} is not a valid "
                          "Azure DevOps organization name (letters, digits, '-')")
    project = parts.get("project") or parts.get("owner") or ""
    return (organization, _check_azure_name(project, "project", step),
            _check_azure_name(parts.get("repo", ""), "repo", step))


def _repository_id(answer: Any, step: str) -> str:
    """The repository id Azure DevOps answered (a GUID, nothing a template wrote)."""
    value = str((answer or {}).get("id") or "") if isinstance(answer, dict) else ""
    if not _UUID.fullmatch(value):
        raise ActionError(f"{step}: Azure DevOps answered no repository id (got {value[:60]!r})")
    return value


ACTIONS: list[type[Action[Any, Any]]] = [PublishAzure]
