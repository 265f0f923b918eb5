"""PullRequestCommenter against httpx.MockTransport: paths, methods, headers, updates."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from envforge.capabilities import ProviderEndpoint
from envforge.errors import (
    ConfigurationError,
    ProviderCommentError,
    ProviderUnreachableError,
    RetriesExhaustedError,
    SummaryError,
)
from envforge.summary.comments import (
    MAX_COMMENT_CHARS,
    PullRequestCommenter,
    PullRequestRef,
    pull_request_from_source,
)
from envforge.summary.render import summary_marker
from tests.unit.summary.provider_client import mock_client

TOKEN = "ghp_unitTestToken0123456789"


def _commenter(provider: str, handler: Callable[[httpx.Request], httpx.Response]
               ) -> tuple[PullRequestCommenter, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    commenter = PullRequestCommenter(mock_client(provider, TOKEN, "https://api.test/base",
                                                 record))
    return commenter, seen


def test_github_creates_when_no_earlier_summary() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=[{"id": 1, "body": "LGTM"}])
        return httpx.Response(201, json={"id": 55})

    commenter, seen = _commenter("github", handler)
    result = commenter.upsert_summary(PullRequestRef("github", "acme/api", 42), "pr-42", "hi")
    assert (result.id, result.created) == (55, True)
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/base/repos/acme/api/issues/42/comments"),
        ("POST", "/base/repos/acme/api/issues/42/comments")]
    assert seen[1].headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(seen[1].content)["body"] == summary_marker("pr-42") + "\nhi"


def test_github_updates_the_earlier_summary_of_this_environment_only() -> None:
    comments = [{"id": 7, "body": summary_marker("pr-4") + "\nother env"},
                {"id": 8, "body": summary_marker("pr-42") + "\nold"}]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=comments if request.method == "GET" else {"id": 8})

    commenter, seen = _commenter("github", handler)
    result = commenter.upsert_summary(PullRequestRef("github", "acme/api", 42), "pr-42",
                                      summary_marker("pr-42") + "\nnew")
    assert (result.id, result.created) == (8, False)
    assert (seen[-1].method, seen[-1].url.path) == ("PATCH", "/base/repos/acme/api/issues/comments/8")


def test_gitlab_notes_path_is_url_encoded_and_edit_uses_put() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=[{"id": 3, "body": summary_marker("pr-7")}])
        return httpx.Response(200, json={"id": 3})

    commenter, seen = _commenter("gitlab", handler)
    commenter.upsert_summary(PullRequestRef("gitlab", "group/sub/web", 7), "pr-7", "x")
    assert seen[0].url.raw_path.startswith(b"/base/projects/group%2Fsub%2Fweb/merge_requests/7/notes")
    assert seen[0].headers["PRIVATE-TOKEN"] == TOKEN
    assert seen[1].method == "PUT"
    assert seen[1].url.raw_path == b"/base/projects/group%2Fsub%2Fweb/merge_requests/7/notes/3"


def test_pages_are_followed_until_a_short_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            page = int(request.url.params["page"])
            batch = [{"id": page * 1000 + i, "body": "x"} for i in range(100 if page < 3 else 5)]
            return httpx.Response(200, json=batch)
        return httpx.Response(201, json={"id": 1})

    commenter, seen = _commenter("github", handler)
    commenter.upsert_summary(PullRequestRef("github", "a/b", 1), "pr-1", "x")
    assert [r.url.params.get("page") for r in seen if r.method == "GET"] == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, ProviderCommentError), (404, ProviderCommentError), (502, RetriesExhaustedError)],
)
def test_refusals_name_status_never_token(status: int, kind: type[Exception]) -> None:
    commenter, _ = _commenter("github", lambda r: httpx.Response(
        status, json={"message": "Bad credentials"}))
    with pytest.raises(kind) as info:
        commenter.upsert_summary(PullRequestRef("github", "a/b", 1), "pr-1", "x")
    assert str(status) in str(info.value) and TOKEN not in str(info.value)


def test_unreachable_provider_is_temporary() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    commenter, _ = _commenter("gitlab", handler)
    with pytest.raises(RetriesExhaustedError, match="did not answer") as caught:
        commenter.upsert_summary(PullRequestRef("gitlab", "a/b", 1), "pr-1", "x")
    # retried at the client (the one layer), then permanent; the cause says it was temporary
    assert isinstance(caught.value.__cause__, ProviderUnreachableError)


def test_long_summaries_are_truncated_under_the_provider_limit() -> None:
    bodies: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=[])
        bodies.append(json.loads(request.content)["body"])
        return httpx.Response(201, json={"id": 1})

    commenter, _ = _commenter("github", handler)
    commenter.upsert_summary(PullRequestRef("github", "a/b", 1), "pr-1", "y" * 100_000)
    assert len(bodies[0]) <= MAX_COMMENT_CHARS and "truncated" in bodies[0]


@pytest.mark.parametrize(
    ("provider", "repository", "project"),
    [("github", "https://github.com/acme/api.git", "acme/api"),
     ("github", "git@github.com:acme/api.git", "acme/api"),
     ("github", "acme/api", "acme/api"),
     ("gitlab", "https://gitlab.example/group/sub/web.git", "group/sub/web")],
)
def test_pull_request_from_source(provider: str, repository: str, project: str) -> None:
    ref = pull_request_from_source(provider, {"repository": repository, "pullRequest": 9})
    assert ref == PullRequestRef(provider, project, 9)


def test_source_without_pull_request_is_refused() -> None:
    with pytest.raises(SummaryError, match="not started from a pull request"):
        pull_request_from_source("github", {"repository": "a/b", "branch": "main"})
    with pytest.raises(SummaryError, match="owner/repo"):
        pull_request_from_source("github", {"repository": "https://github.com/a", "pullRequest": 1})


def test_unknown_provider() -> None:
    with pytest.raises(ConfigurationError, match="unknown git provider 'bitbucket'"):
        ProviderEndpoint.configure("bitbucket", token="x")
    with pytest.raises(SummaryError, match="'azure' has no pull-request summary"):
        PullRequestCommenter(mock_client("azure", "x", "https://dev.azure.test",
                                         lambda r: httpx.Response(200)))
