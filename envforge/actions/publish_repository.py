"""The one create/push/rollback sequence of the repository publishers (publish:github,
publish:gitlab, publish:azure), and the one way a repository a run created is deleted.

The sequence, the same for every provider: record in the run's ledger what is about to be
created (before the request, so a kill -9 leaves a trace), create it through the provider
client, record what the provider answered (its name and id), push the workspace to the clone
URL it answered (only under the configured Git base), and if anything after the create fails,
delete what was created (and record that). Rollback and the clean-up after a killed create
delete through :func:`delete_repository` only what the record names, by the identity the
provider answered: GitLab's project id, Azure DevOps' repository id, and for GitHub (which
deletes by name) the name after checking the repository there still has the id it was
created with, so a repository someone made under that name since is never deleted.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from envforge.actions.base import ActionContext
from envforge.actions.publish_common import (
    ProviderInput,
    check_name,
    commit_all,
    copy_into,
    provider_git,
)
from envforge.capabilities import quote_segment
from envforge.capabilities.providers import ProviderClient

#: the ledger's kind for a repository a publisher creates on a Git provider
LEDGER_KIND = "provider-repository"
AZURE_API_VERSION = "7.1"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class CreatedRepository:
    """A repository as the provider answered its creation: what rollback deletes."""

    provider: str
    #: what the step asked for (``owner/repo``; Azure: ``org/project/repo``): the ledger key
    requested: str
    #: the full name the provider answered
    name: str
    clone_url: str
    web_url: str
    #: the provider's id (GitHub's numeric id, GitLab's project id, Azure's repository GUID)
    id: str | None = None
    #: Azure DevOps: ``organization/project`` it lives in
    location: str | None = None

    def entry(self) -> dict[str, Any]:
        """The ledger line's details (no URL: they are not needed to delete it)."""
        data = asdict(self)
        data.pop("clone_url")
        data.pop("web_url")
        return data

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> CreatedRepository:
        return cls(provider=str(entry.get("provider", "")),
                   requested=str(entry.get("requested", "")), name=str(entry.get("name", "")),
                   clone_url="", web_url="",
                   id=None if entry.get("id") is None else str(entry["id"]),
                   location=None if entry.get("location") is None else str(entry["location"]))


def publish_new_repository(ctx: ActionContext, client: ProviderClient, params: ProviderInput,
                           source_rel: str, requested: str,
                           create: Callable[[], CreatedRepository], default_branch: str,
                           message: str) -> tuple[CreatedRepository, str, str]:
    """Create the repository and push the workspace's ``source_rel`` to ``default_branch``;
    (the repository, the pushed commit, the URL pushed to). Whatever fails after the create
    deletes it again before the error goes on."""
    ledger = ctx.ledger
    ledger.record(LEDGER_KIND, "intended", provider=client.provider, requested=requested)
    created = create()
    ledger.record(LEDGER_KIND, "made", **created.entry())
    remember_created(ctx.run_id, created)
    try:
        push_url = client.check_clone_url(created.clone_url)
        with tempfile.TemporaryDirectory(prefix="envforge-publish-") as tmp:
            work = Path(tmp)
            copy_into(ctx, source_rel, work, "", f"repository {created.name}")
            provider_git(["init", "--quiet", "-b", default_branch], work, client)
            commit = commit_all(work, params, message, client)
            provider_git(["push", "--quiet", push_url, f"HEAD:refs/heads/{default_branch}"],
                         work, client)
    except BaseException:
        # a failed action cleans up after itself: the repository it just created
        remove_created(ctx, client, created)
        raise
    return created, commit, push_url


#: the repositories each run of this process created: (provider, owner/name) per run id. A
#: step that changes a repository with the operator's token (github:webhook) may do so only on
#: these (and the operator's configured patterns), never on any repository the token reaches.
_CREATED_BY_RUN: dict[str, set[tuple[str, str]]] = {}
_CREATED_LOCK = threading.Lock()
#: runs remembered at most (oldest forgotten first): a long-lived worker does not grow
_MAX_RUNS = 1_000


def remember_created(run_id: str, created: CreatedRepository) -> None:
    """Note that run ``run_id`` created ``created``."""
    with _CREATED_LOCK:
        _CREATED_BY_RUN.setdefault(run_id, set()).add((created.provider, created.name.lower()))
        while len(_CREATED_BY_RUN) > _MAX_RUNS:
            del _CREATED_BY_RUN[next(iter(_CREATED_BY_RUN))]


def created_by_run(run_id: str, provider: str, name: str) -> bool:
    """Whether run ``run_id`` created ``provider`` repository ``name`` (owner/repo)."""
    with _CREATED_LOCK:
        return (provider, name.lower()) in _CREATED_BY_RUN.get(run_id, set())


def remove_created(ctx: ActionContext, client: ProviderClient,
                   created: CreatedRepository) -> None:
    """Delete what this run created (rollback, a failed push) and record that it is gone."""
    if delete_repository(client, created):
        ctx.logger.info("deleted %s repository %s, which this run created", created.provider,
                        created.name)
    else:
        ctx.logger.warning("kept %s repository %s: it is no longer the one this run created",
                           created.provider, created.name)
    ctx.ledger.record(LEDGER_KIND, "removed", provider=created.provider,
                      requested=created.requested)


def delete_repository(client: ProviderClient, created: CreatedRepository) -> bool:
    """Delete exactly the repository ``created`` names, by the provider's own identity; False
    (nothing deleted) when it is gone or the name now belongs to another repository."""
    if created.provider != client.provider:
        raise ValueError(f"a {created.provider} repository cannot be deleted with a "
                         f"{client.provider} client")
    if created.provider == "github":
        owner, _, repo = created.name.rpartition("/")
        check_name(owner, "owner", client.what)
        check_name(repo, "repo", client.what)
        answer = client.request("GET", f"/repos/{owner}/{repo}", missing_ok=True)
        if answer.status == 404:
            return False
        current = client.json_of(answer, f"GET /repos/{owner}/{repo}")
        if created.id is not None and str(current.get("id")) != created.id:
            return False  # deleted and made again by someone else: not ours
        client.request("DELETE", f"/repos/{owner}/{repo}", missing_ok=True)
        return True
    if created.provider == "gitlab":
        if created.id is None or not created.id.isdigit():
            return False
        return client.request("DELETE", f"/projects/{int(created.id)}",
                              missing_ok=True).status != 404
    if created.provider == "azure":
        organization, _, project = (created.location or "").partition("/")
        if not created.id or not _UUID.fullmatch(created.id) or not organization \
                or not project:
            return False
        answer = client.request(
            "DELETE", f"/{organization}/{quote_segment(project)}/_apis/git/repositories/"
            f"{created.id}", params={"api-version": AZURE_API_VERSION},
            missing_ok=True)
        return answer.status != 404
    raise ValueError(f"unknown provider {created.provider!r}")
