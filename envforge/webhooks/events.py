"""Turning GitHub and GitLab webhook payloads into pull-request events envforge acts on.

Only pull-request (merge-request) events matter: opened, reopened or new commits create or
update the environment ``pr-<number>``; closed or merged destroy it. Anything else is
:class:`IgnoredEvent` with a reason, which the server answers with 202 so the provider does not
mark the delivery as failed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from envforge.errors import WebhookPayloadError


class Operation(StrEnum):
    CREATE_OR_UPDATE = "create-or-update"
    DESTROY = "destroy"


@dataclass(frozen=True)
class PullRequestEvent:
    """One pull/merge-request event, provider-neutral."""

    provider: str            # "github" | "gitlab"
    repository: str          # "owner/name" (GitHub) or "group/sub/project" (GitLab)
    number: int              # pull-request number / merge-request iid
    action: str              # the provider's own action name ("opened", "merge", ...)
    operation: Operation
    head_sha: str
    branch: str
    clone_url: str
    web_url: str = ""
    project_id: int | None = None  # GitLab's numeric project id (for its notes API)
    # Set for close/reopen so a later close of the same commit is a new run, while a
    # redelivery of the same event (same payload, same timestamp) is not.
    occurrence: str = ""
    # The head lives in another repository (a fork): its code is not the project's to trust.
    from_fork: bool = False

    @property
    def idempotency_key(self) -> str:
        """Stable per repository, number, head commit and action: a redelivery starts nothing."""
        action = f"{self.action}@{self.occurrence}" if self.occurrence else self.action
        return f"{self.provider}:{self.repository}:{self.number}:{self.head_sha}:{action}"


@dataclass(frozen=True)
class IgnoredEvent:
    """An event envforge does not act on, and why."""

    reason: str


#: Pull-request numbers are 32-bit on both providers; anything above is forged or broken.
MAX_PR_NUMBER = 2**31 - 1
MAX_BRANCH_LENGTH = 255
_REPOSITORY_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
#: What git's check-ref-format refuses in a branch name, plus whitespace.
_BAD_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock(?:/|$)")
_CLONE_URL = re.compile(r"(?:https?|ssh)://[^\s\x00-\x1f\x7f]{1,2000}|git@[^\s\x00-\x1f\x7f]{1,2000}")


def check_event(event: PullRequestEvent) -> PullRequestEvent:
    """``event`` if its number, repository, branch, commit and clone URL are sane; otherwise
    WebhookPayloadError (400) naming the field, before any run can start."""
    where = f"{event.provider} payload"
    if not 1 <= event.number <= MAX_PR_NUMBER:
        raise WebhookPayloadError(f"{where}: pull request number {str(event.number)[:20]} is "
                                  f"out of range (1 to {MAX_PR_NUMBER})")
    parts = event.repository.split("/")
    if (len(parts) < 2 or (event.provider == "github" and len(parts) != 2) or len(parts) > 20
            or not all(_REPOSITORY_PART.fullmatch(part) for part in parts)):
        raise WebhookPayloadError(f"{where}: repository name {event.repository[:100]!r} is "
                                  "not owner/name (letters, digits, '_', '.', '-')")
    branch = event.branch
    if (not branch or len(branch) > MAX_BRANCH_LENGTH or branch.startswith(("-", "/", "."))
            or branch.endswith(("/", ".")) or _BAD_BRANCH.search(branch)):
        raise WebhookPayloadError(f"{where}: branch name {branch[:100]!r} is not a valid git "
                                  "branch name")
    if not _COMMIT.fullmatch(event.head_sha):
        raise WebhookPayloadError(f"{where}: head commit {event.head_sha[:80]!r} is not a "
                                  "commit hash")
    if not _CLONE_URL.fullmatch(event.clone_url):
        raise WebhookPayloadError(f"{where}: clone URL {event.clone_url[:100]!r} is not an "
                                  "http(s), ssh or git@ URL")
    return event


GITHUB_CREATE_ACTIONS = frozenset({"opened", "reopened", "synchronize"})
GITHUB_DESTROY_ACTIONS = frozenset({"closed"})
GITLAB_CREATE_ACTIONS = frozenset({"open", "reopen", "update"})
GITLAB_DESTROY_ACTIONS = frozenset({"close", "merge"})


def _field(payload: Mapping[str, Any], path: str, kind: type, provider: str) -> Any:
    """The value at dotted ``path``, of type ``kind``; a clear 400 names the missing field."""
    value: Any = payload
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise WebhookPayloadError(f"{provider} payload: field {path!r} is missing")
        value = value[part]
    # bool is an int subclass; a number field holding true/false is malformed.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise WebhookPayloadError(
            f"{provider} payload: field {path!r} should be {kind.__name__}, "
            f"got {type(value).__name__}"
        )
    return value


def parse_github_event(event_name: str | None, payload: Mapping[str, Any]) -> (
        PullRequestEvent | IgnoredEvent):
    """A GitHub delivery (``X-GitHub-Event`` header and JSON body) as an event or a skip."""
    if not event_name:
        raise WebhookPayloadError("github: the X-GitHub-Event header is missing")
    if event_name != "pull_request":
        return IgnoredEvent(f"github event {event_name!r} is not a pull_request event")
    action = _field(payload, "action", str, "github")
    if action in GITHUB_CREATE_ACTIONS:
        operation = Operation.CREATE_OR_UPDATE
    elif action in GITHUB_DESTROY_ACTIONS:
        operation = Operation.DESTROY
    else:
        return IgnoredEvent(f"github pull_request action {action!r} changes no environment")
    pr = _field(payload, "pull_request", Mapping, "github")
    occurrence = ""
    if action in ("closed", "reopened"):
        occurrence = str(pr.get("closed_at" if action == "closed" else "updated_at") or "")
    head_repo = (pr.get("head") or {}).get("repo")
    base_name = _field(payload, "repository.full_name", str, "github")
    from_fork = not isinstance(head_repo, Mapping) or head_repo.get("full_name") != base_name
    return check_event(PullRequestEvent(
        provider="github",
        repository=_field(payload, "repository.full_name", str, "github"),
        number=_field(payload, "number", int, "github"),
        action=action,
        operation=operation,
        head_sha=_field(payload, "pull_request.head.sha", str, "github"),
        branch=_field(payload, "pull_request.head.ref", str, "github"),
        clone_url=_field(payload, "repository.clone_url", str, "github"),
        web_url=str(pr.get("html_url") or ""),
        occurrence=occurrence,
        from_fork=from_fork,
    ))


def parse_gitlab_event(event_name: str | None, payload: Mapping[str, Any]) -> (
        PullRequestEvent | IgnoredEvent):
    """A GitLab delivery (``X-Gitlab-Event`` header and JSON body) as an event or a skip."""
    kind = payload.get("object_kind") if isinstance(payload, Mapping) else None
    if kind != "merge_request":
        shown = kind or event_name or "unknown"
        return IgnoredEvent(f"gitlab event {shown!r} is not a merge request hook")
    attrs = _field(payload, "object_attributes", Mapping, "gitlab")
    action = attrs.get("action")
    if not isinstance(action, str):
        return IgnoredEvent("gitlab merge request hook without an action changes nothing")
    if action in GITLAB_CREATE_ACTIONS:
        # 'update' also fires for title, label or assignee changes; only new commits
        # (GitLab then sends the previous head as 'oldrev') need a redeploy.
        if action == "update" and not attrs.get("oldrev"):
            return IgnoredEvent("gitlab merge request update without new commits")
        operation = Operation.CREATE_OR_UPDATE
    elif action in GITLAB_DESTROY_ACTIONS:
        operation = Operation.DESTROY
    else:
        return IgnoredEvent(f"gitlab merge request action {action!r} changes no environment")
    occurrence = ""
    if action in ("close", "reopen", "merge"):
        occurrence = str(attrs.get("updated_at") or "")
    return check_event(PullRequestEvent(
        provider="gitlab",
        repository=_field(payload, "project.path_with_namespace", str, "gitlab"),
        number=_field(payload, "object_attributes.iid", int, "gitlab"),
        action=action,
        operation=operation,
        head_sha=_field(payload, "object_attributes.last_commit.id", str, "gitlab"),
        branch=_field(payload, "object_attributes.source_branch", str, "gitlab"),
        clone_url=_field(payload, "project.git_http_url", str, "gitlab"),
        web_url=str(attrs.get("url") or ""),
        project_id=_field(payload, "project.id", int, "gitlab"),
        occurrence=occurrence,
        from_fork=attrs.get("source_project_id", attrs.get("target_project_id"))
        != attrs.get("target_project_id"),
    ))
