from __future__ import annotations

import pytest

from envforge.errors import WebhookPayloadError
from envforge.webhooks.events import (
    IgnoredEvent,
    Operation,
    PullRequestEvent,
    parse_github_event,
    parse_gitlab_event,
)
from tests.unit.webhooks.payloads import github_pull_request, gitlab_merge_request


@pytest.mark.parametrize("action", ["opened", "reopened", "synchronize"])
def test_github_open_and_new_commits_create_or_update(action: str) -> None:
    event = parse_github_event("pull_request", github_pull_request(action, number=42, sha="c" * 40))
    assert isinstance(event, PullRequestEvent)
    assert event.operation is Operation.CREATE_OR_UPDATE
    assert (event.provider, event.repository, event.number, event.head_sha, event.branch) == (
        "github", "acme/orders-api", 42, "c" * 40, "feature/x")
    assert event.clone_url == "https://github.com/acme/orders-api.git"


@pytest.mark.parametrize("merged", [True, False])
def test_github_closed_destroys_merged_or_not(merged: bool) -> None:
    event = parse_github_event("pull_request", github_pull_request(
        "closed", merged=merged, closed_at="2026-11-24T03:00:00Z"))
    assert isinstance(event, PullRequestEvent)
    assert event.operation is Operation.DESTROY


@pytest.mark.parametrize("action", ["labeled", "edited", "assigned", "review_requested"])
def test_github_other_actions_are_ignored_with_a_reason(action: str) -> None:
    result = parse_github_event("pull_request", github_pull_request(action))
    assert isinstance(result, IgnoredEvent)
    assert repr(action) in result.reason


def test_github_other_events_are_ignored() -> None:
    result = parse_github_event("push", {"ref": "refs/heads/main"})
    assert isinstance(result, IgnoredEvent) and "'push'" in result.reason
    assert isinstance(parse_github_event("ping", {"zen": "hi"}), IgnoredEvent)


def test_github_missing_event_header_or_field_is_a_payload_error() -> None:
    with pytest.raises(WebhookPayloadError, match="X-GitHub-Event"):
        parse_github_event(None, github_pull_request())
    payload = github_pull_request()
    del payload["pull_request"]["head"]["sha"]
    with pytest.raises(WebhookPayloadError, match=r"'pull_request\.head\.sha' is missing"):
        parse_github_event("pull_request", payload)
    payload = github_pull_request()
    payload["number"] = True
    with pytest.raises(WebhookPayloadError, match="'number' should be int, got bool"):
        parse_github_event("pull_request", payload)


def test_idempotency_key_is_stable_per_repository_number_commit_and_action() -> None:
    first = parse_github_event("pull_request", github_pull_request("synchronize", sha="d" * 40))
    again = parse_github_event("pull_request", github_pull_request("synchronize", sha="d" * 40))
    newer = parse_github_event("pull_request", github_pull_request("synchronize", sha="e" * 40))
    assert isinstance(first, PullRequestEvent) and isinstance(again, PullRequestEvent)
    assert isinstance(newer, PullRequestEvent)
    assert first.idempotency_key == again.idempotency_key
    assert first.idempotency_key == f"github:acme/orders-api:42:{'d' * 40}:synchronize"
    assert newer.idempotency_key != first.idempotency_key


def test_closing_twice_on_the_same_commit_is_two_events_but_a_redelivery_is_one() -> None:
    closed = [parse_github_event("pull_request", github_pull_request("closed", closed_at=at))
              for at in ("2026-11-24T03:00:00Z", "2026-11-24T03:00:00Z", "2026-11-24T04:00:00Z")]
    keys = [e.idempotency_key for e in closed if isinstance(e, PullRequestEvent)]
    assert keys[0] == keys[1] != keys[2]


@pytest.mark.parametrize("action", ["open", "reopen"])
def test_gitlab_open_creates(action: str) -> None:
    event = parse_gitlab_event("Merge Request Hook", gitlab_merge_request(action, iid=7))
    assert isinstance(event, PullRequestEvent)
    assert event.operation is Operation.CREATE_OR_UPDATE
    assert (event.provider, event.repository, event.number, event.project_id) == (
        "gitlab", "group/sub/web", 7, 99)
    assert event.branch == "feature/y" and event.head_sha == "b" * 40


def test_gitlab_update_only_with_new_commits() -> None:
    pushed = parse_gitlab_event("Merge Request Hook",
                                gitlab_merge_request("update", oldrev="f" * 40))
    assert isinstance(pushed, PullRequestEvent)
    assert pushed.operation is Operation.CREATE_OR_UPDATE
    relabelled = parse_gitlab_event("Merge Request Hook", gitlab_merge_request("update"))
    assert isinstance(relabelled, IgnoredEvent) and "without new commits" in relabelled.reason


@pytest.mark.parametrize("action", ["close", "merge"])
def test_gitlab_close_and_merge_destroy(action: str) -> None:
    event = parse_gitlab_event("Merge Request Hook", gitlab_merge_request(action))
    assert isinstance(event, PullRequestEvent) and event.operation is Operation.DESTROY


def test_gitlab_other_hooks_and_actions_are_ignored() -> None:
    assert isinstance(parse_gitlab_event("Push Hook", {"object_kind": "push"}), IgnoredEvent)
    approved = parse_gitlab_event("Merge Request Hook", gitlab_merge_request("approved"))
    assert isinstance(approved, IgnoredEvent) and "'approved'" in approved.reason


def test_gitlab_missing_field_is_named() -> None:
    payload = gitlab_merge_request()
    del payload["object_attributes"]["last_commit"]
    with pytest.raises(WebhookPayloadError, match=r"object_attributes\.last_commit\.id"):
        parse_gitlab_event("Merge Request Hook", payload)


def test_close_without_timestamp_keeps_the_plain_key() -> None:
    event = parse_github_event("pull_request", github_pull_request("closed", closed_at=None))
    assert isinstance(event, PullRequestEvent)
    assert event.idempotency_key.endswith(":closed")
