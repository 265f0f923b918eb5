"""Posting an environment summary as a pull-request comment through the provider's REST API.

GitHub: ``POST /repos/{owner}/{repo}/issues/{number}/comments``; GitLab:
``POST /projects/{id}/merge_requests/{iid}/notes``. An earlier envforge comment for the same
environment (found by the marker line :func:`summary_marker`) is edited instead, so a pull
request carries one summary that follows its latest run. HTTP, headers, retries and errors:
the one provider client, :mod:`envforge.capabilities.providers`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, Self
from urllib.parse import quote, urlsplit

from envforge.capabilities.providers import ProviderClient
from envforge.errors import ProviderCommentError, SummaryError
from envforge.secrets.redaction import scrub
from envforge.summary.render import summary_marker

__all__ = ["CommentResult", "ProviderSession", "PullRequestCommenter", "PullRequestRef",
           "post_summary_comment", "pull_request_from_source"]
#: GitHub refuses comments over 65,536 characters; stay under it on both providers.
MAX_COMMENT_CHARS = 60_000
#: Pages of 100 comments searched for an earlier summary (bounded: 1,000 comments).
MAX_PAGES = 10


@dataclass(frozen=True)
class PullRequestRef:
    """A pull/merge request: provider, project ("owner/repo" or GitLab path or id), number."""

    provider: str
    project: str
    number: int


@dataclass(frozen=True)
class CommentResult:
    """The comment posted or edited on the pull request."""
    id: int
    created: bool  # False: an earlier envforge comment was updated


def pull_request_from_source(provider: str, source: Mapping[str, Any]) -> PullRequestRef:
    """The pull request of an environment's ``source`` (repository URL and pullRequest)."""
    repository, number = source.get("repository"), source.get("pullRequest")
    if not repository or not isinstance(number, int):
        raise SummaryError("the environment's source has no repository and pullRequest: "
                           "it was not started from a pull request")
    path = urlsplit(str(repository)).path if "://" in str(repository) else str(repository)
    if ":" in path and "://" not in str(repository):  # git@host:owner/repo.git
        path = path.split(":", 1)[1]
    project = path.strip("/").removesuffix(".git")
    if provider == "github" and project.count("/") != 1:
        raise SummaryError(f"source repository {repository!r} is not an owner/repo on GitHub")
    return PullRequestRef(provider, project, number)


class ProviderSession:
    """One open provider client (GitHub or GitLab) for the summary's calls, closed on exit:
    the base of the comment and the status clients, which differ only in the calls they
    make. Refusals are ``refused`` errors; no answer is a ProviderUnreachableError."""

    refused: type[SummaryError] = SummaryError

    def __init__(self, client: ProviderClient) -> None:
        if client.provider not in ("github", "gitlab"):
            raise SummaryError(f"git provider {client.provider!r} has no pull-request "
                               "summary or status: use github or gitlab")
        client.refused = self.refused
        self.client = client
        self.provider = client.provider

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.call(method, path, **kwargs)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PullRequestCommenter(ProviderSession):
    """Creates or updates the envforge summary comment on one provider."""

    refused = ProviderCommentError

    def upsert_summary(self, pull_request: PullRequestRef, environment: str,
                       markdown: str) -> CommentResult:
        """Edit this environment's earlier summary comment, or post a new one."""
        marker = summary_marker(environment)
        body = scrub(markdown)
        if not body.startswith(marker):
            body = f"{marker}\n{body}"
        body = _limit(body)
        base = self._thread_path(pull_request)
        for comment in self._comments(base):
            if str(comment.get("body") or "").startswith(marker):
                edit = (f"{self._repo_path(pull_request)}/issues/comments/{comment['id']}"
                        if self.provider == "github" else f"{base}/{comment['id']}")
                self._call("PATCH" if self.provider == "github" else "PUT", edit,
                           json={"body": body})
                return CommentResult(int(comment["id"]), created=False)
        created = self._call("POST", base, json={"body": body})
        return CommentResult(int(created["id"]), created=True)

    def _repo_path(self, pr: PullRequestRef) -> str:
        return f"/repos/{pr.project}"

    def _thread_path(self, pr: PullRequestRef) -> str:
        if self.provider == "github":
            return f"/repos/{pr.project}/issues/{pr.number}/comments"
        return f"/projects/{quote(pr.project, safe='')}/merge_requests/{pr.number}/notes"

    def _comments(self, path: str) -> Iterator[dict[str, Any]]:
        for page in range(1, MAX_PAGES + 1):
            params: dict[str, Any] = {"per_page": 100, "page": page}
            if self.provider == "gitlab":
                params |= {"sort": "asc", "order_by": "created_at"}
            batch = self._call("GET", path, params=params)
            if not isinstance(batch, list):
                return
            yield from (c for c in batch if isinstance(c, dict))
            if len(batch) < 100:
                return


def _limit(body: str) -> str:
    if len(body) <= MAX_COMMENT_CHARS:
        return body
    note = "\n\n…(summary truncated; the full text is the Prefect artifact)\n"
    return body[: MAX_COMMENT_CHARS - len(note)] + note


class CommenterSource(Protocol):
    """What this module needs of the connection source it is handed (structurally
    :class:`envforge.connections.ConnectionSource`): a commenter for a token block."""

    def pull_request_commenter(self, name: str) -> AbstractContextManager[PullRequestCommenter]:
        """A commenter using the ``GitProviderToken`` block ``name``, closed on exit."""
        ...


def post_summary_comment(markdown: str, environment: str, source: Mapping[str, Any],
                         token_block: str, *, connections: CommenterSource) -> CommentResult:
    """Post (or update) the summary on the environment's pull request, with the token held
    by the ``GitProviderToken`` block named ``token_block`` (resolved by ``connections``)."""
    with connections.pull_request_commenter(token_block) as commenter:
        pull_request = pull_request_from_source(commenter.provider, source)
        return commenter.upsert_summary(pull_request, environment, markdown)
