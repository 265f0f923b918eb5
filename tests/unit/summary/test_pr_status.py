"""The status reporter's requests, against httpx.MockTransport: what is sent for a branch
without a commit, GitLab's failure, and errors that never carry the token."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from envforge.errors import ProviderUnreachableError, RetriesExhaustedError, SummaryError
from envforge.summary.pr_status import PullRequestStatusReporter, StatusTarget
from tests.unit.summary.provider_client import mock_client

TOKEN = SecretStr("glpat-unit-token-123")


def _reporter(provider: str, answer: Any) -> tuple[PullRequestStatusReporter, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        response: httpx.Response = answer(request) if callable(answer) else answer
        return response

    reporter = PullRequestStatusReporter(mock_client(provider, TOKEN.get_secret_value(),
                                                     "https://api.test", handle))
    return reporter, seen


def test_target_from_an_environment_source() -> None:
    target = StatusTarget.from_source("github", "pr-4", {
        "repository": "git@github.com:acme/shop.git", "pullRequest": 4, "branch": "fix"})
    assert (target.pull_request.project, target.commit, target.branch) == ("acme/shop", None,
                                                                           "fix")
    assert target.context == "envforge/pr-4"
    with pytest.raises(SummaryError, match="not started from a pull request"):
        StatusTarget.from_source("github", "dev", {"repository": "acme/shop"})


def test_github_branch_without_commit_gets_a_deployment_but_no_commit_status() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=[])
        if request.url.path.endswith("/deployments"):
            return httpx.Response(201, json={"id": 7})
        return httpx.Response(201, json={"id": 8, "state": "in_progress"})

    reporter, seen = _reporter("github", answer)
    target = StatusTarget.from_source("github", "pr-4", {
        "repository": "https://github.com/acme/shop", "pullRequest": 4, "branch": "fix"})
    with reporter:
        report = reporter.report(target, "in_progress", log_url="https://prefect.test/run/1")
    assert report.deployments == [7] and report.commit_status is None
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/repos/acme/shop/deployments"), ("POST", "/repos/acme/shop/deployments"),
        ("POST", "/repos/acme/shop/deployments/7/statuses")]
    assert "sha" not in seen[0].url.params
    created = json.loads(seen[1].content)
    assert created["ref"] == "fix" and created["transient_environment"] is True
    assert json.loads(seen[2].content) == {
        "state": "in_progress", "description": "envforge is creating the environment",
        "auto_inactive": True, "log_url": "https://prefect.test/run/1"}


def test_gitlab_failure_is_a_failed_commit_status_on_an_existing_environment() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=[{"id": 3, "name": "pr-4", "external_url": None}])
        return httpx.Response(201, json={"id": 9})

    reporter, seen = _reporter("gitlab", answer)
    target = StatusTarget.from_source("gitlab", "pr-4", {
        "repository": "https://gitlab.test/acme/shop.git", "pullRequest": 4,
        "commit": "c0ffee" * 6 + "c0ff", "branch": "fix"})
    with reporter:
        report = reporter.report(target, "failure")
    assert report.environment_id == 3 and report.commit_status == "failed"
    assert [(r.method, r.url.raw_path.decode().split("?")[0]) for r in seen] == [
        ("GET", "/projects/acme%2Fshop/environments"),
        ("POST", f"/projects/acme%2Fshop/statuses/{target.commit}")]
    assert seen[1].headers["PRIVATE-TOKEN"] == TOKEN.get_secret_value()


def test_a_server_error_is_temporary_and_never_shows_the_token() -> None:
    reporter, _ = _reporter("gitlab", httpx.Response(502, text=TOKEN.get_secret_value()))
    target = StatusTarget.from_source("gitlab", "pr-4", {"repository": "acme/shop",
                                                         "pullRequest": 4})
    with reporter, pytest.raises(RetriesExhaustedError) as caught:
        reporter.report(target, "success", url="https://pr-4.test")
    assert "502" in str(caught.value) and TOKEN.get_secret_value() not in str(caught.value)
    assert isinstance(caught.value.__cause__, ProviderUnreachableError)
