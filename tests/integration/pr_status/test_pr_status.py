"""The environment's state on its pull request, through a GitProviderToken block, against the
local stand-in of GitHub's and GitLab's status endpoints (tests/standins/git_provider): the
reporter's transitions on each provider, then the real create and destroy flows setting them
(with the summary still one comment, edited in place)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks.loader import BlockConnections
from envforge.errors import ProviderStatusError
from envforge.summary.pr_status import report_environment_state
from tests.integration.lifecycle.conftest import gitops
from tests.standins.git_provider import FakeProviderServer

__all__ = ["gitops"]

pytestmark = pytest.mark.prefect

TOKEN = "ghp_statusToken" + uuid.uuid4().hex[:12]
SHA1, SHA2 = "a" * 40, "b" * 40


@pytest.fixture
def provider(prefect_server: None) -> Iterator[FakeProviderServer]:
    with FakeProviderServer(TOKEN) as fake:
        yield fake


#: the connection source the flows hand down: Prefect Blocks
BLOCKS = BlockConnections()


def _block(provider: FakeProviderServer, kind: str) -> str:
    from blocks.webhooks import GitProviderToken

    name = f"status-{kind}-{uuid.uuid4().hex[:6]}"
    GitProviderToken(provider=kind, token=SecretStr(TOKEN), api_url=provider.url).save(
        name, overwrite=True)
    return name


def _deployment_states(provider: FakeProviderServer, repo: str) -> list[tuple[str, list[str]]]:
    return [(d["sha"], [s["state"] for s in d["statuses"]])
            for d in provider.state.deployments.get(repo, [])]


def test_github_deployment_and_commit_status_follow_the_environment(
        provider: FakeProviderServer) -> None:
    block = _block(provider, "github")
    source = {"repository": "https://github.com/acme/shop.git", "pullRequest": 5,
              "branch": "feature", "commit": SHA1}
    run = "http://127.0.0.1:4200/runs/flow-run/1"
    report_environment_state(block, "pr-5", source, "in_progress", log_url=run, connections=BLOCKS)
    report = report_environment_state(block, "pr-5", source, "success",
                                      url="https://pr-5.preview.test", log_url=run, connections=BLOCKS)
    assert report.commit_status == "success" and len(report.deployments) == 1
    # a new commit: a new deployment; a failure leaves the earlier success standing
    report_environment_state(block, "pr-5", {**source, "commit": SHA2}, "in_progress", connections=BLOCKS)
    report_environment_state(block, "pr-5", {**source, "commit": SHA2}, "failure", connections=BLOCKS)
    assert _deployment_states(provider, "acme/shop") == [
        (SHA1, ["in_progress", "success"]), (SHA2, ["in_progress", "failure"])]
    [first] = [d for d in provider.state.deployments["acme/shop"] if d["sha"] == SHA1]
    assert first["environment"] == "pr-5" and first["transient_environment"]
    assert not first["production_environment"]
    success = first["statuses"][1]
    assert success["environment_url"] == "https://pr-5.preview.test"
    assert success["log_url"] == run
    statuses = provider.state.commit_statuses
    assert [s["state"] for s in statuses[("acme/shop", SHA1)]] == ["pending", "success"]
    assert [s["state"] for s in statuses[("acme/shop", SHA2)]] == ["pending", "failure"]
    assert {s["context"] for s in statuses[("acme/shop", SHA1)]} == {"envforge/pr-5"}
    assert statuses[("acme/shop", SHA1)][1]["target_url"] == "https://pr-5.preview.test"

    destroyed = report_environment_state(block, "pr-5", source, "inactive", connections=BLOCKS)
    assert len(destroyed.deployments) == 2 and destroyed.commit_status is None
    assert [states[-1] for _, states in _deployment_states(provider, "acme/shop")] == [
        "inactive", "inactive"]
    assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}"
               for r in provider.state.requests)


def test_gitlab_environment_and_commit_status_follow_the_environment(
        provider: FakeProviderServer) -> None:
    block = _block(provider, "gitlab")
    source = {"repository": "https://gitlab.example/acme/web/shop.git", "pullRequest": 9,
              "branch": "feature", "commit": SHA1}
    report_environment_state(block, "pr-9", source, "in_progress", connections=BLOCKS)
    report = report_environment_state(block, "pr-9", source, "success",
                                      url="https://pr-9.preview.test", connections=BLOCKS)
    project = "acme%2Fweb%2Fshop"  # the URL-encoded path, as GitLab wants it
    [environment] = provider.state.environments[project]
    assert report.environment_id == environment["id"]
    assert environment["external_url"] == "https://pr-9.preview.test"
    assert environment["tier"] == "development" and environment["state"] == "available"
    commit = provider.state.commit_statuses[(project, SHA1)]
    assert [s["status"] for s in commit] == ["running", "success"]
    assert {(s["name"], s["ref"]) for s in commit} == {("envforge/pr-9", "feature")}

    report_environment_state(block, "pr-9", source, "inactive", connections=BLOCKS)
    assert provider.state.environments[project][0]["state"] == "stopped"
    assert all(r.headers.get("PRIVATE-TOKEN") == TOKEN for r in provider.state.requests)


def test_a_refused_status_names_the_request_never_the_token(
        provider: FakeProviderServer) -> None:
    from blocks.webhooks import GitProviderToken

    GitProviderToken(provider="github", token=SecretStr("wrong-" + TOKEN),
                     api_url=provider.url).save("status-wrong", overwrite=True)
    source = {"repository": "acme/shop", "pullRequest": 5, "commit": SHA1}
    with pytest.raises(ProviderStatusError) as caught:
        report_environment_state("status-wrong", "pr-5", source, "in_progress", connections=BLOCKS)
    message = str(caught.value)
    assert "401" in message and "/repos/acme/shop/deployments" in message
    assert TOKEN not in message


@pytest.mark.slow  # 10-20 s of flow runs on a loaded machine: make test-fast skips it
def test_create_and_destroy_flows_set_the_pull_request_state(
        provider: FakeProviderServer, gitops: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.environments import SourceRef, create_environment, destroy_environment

    block = _block(provider, "github")
    monkeypatch.setenv("ENVFORGE_PR_COMMENT_BLOCK", block)
    name = f"pr-3-{uuid.uuid4().hex[:6]}"
    source = {"repository": "https://github.com/acme/orders.git", "pullRequest": 3,
              "branch": "feature", "commit": SHA1}
    created = create_environment(name, template="python-service",  # type: ignore[call-overload]
                                 ttl="2h", source=SourceRef(**source))
    create_environment(name, parameters={"replicas": 2},
                       source=SourceRef(**{**source, "commit": SHA2}))
    destroy_environment(name)

    assert _deployment_states(provider, "acme/orders") == [
        (SHA1, ["in_progress", "success", "inactive"]),
        (SHA2, ["in_progress", "success", "inactive"])]
    [first] = [d for d in provider.state.deployments["acme/orders"] if d["sha"] == SHA1]
    assert first["environment"] == name
    assert first["statuses"][1]["environment_url"] == created["url"]
    assert "/flow-run/" in first["statuses"][1]["log_url"]
    assert [s["state"] for s in provider.state.commit_statuses[("acme/orders", SHA2)]] == [
        "pending", "success"]
    # the summary is still one comment, edited by each run
    [thread] = provider.state.threads.values()
    assert len(thread) == 1 and "destroyed" in next(iter(thread.values())).lower()
