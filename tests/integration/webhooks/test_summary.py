"""The summary as a Prefect artifact inside a real flow run, and as a PR comment on a local
stand-in of the provider's API."""

from __future__ import annotations

from uuid import UUID

import pytest
from pydantic import SecretStr

from blocks.loader import BlockConnections
from envforge.errors import ProviderCommentError
from envforge.summary import publish_summary_artifact, render_summary, summary_marker
from envforge.summary.comments import post_summary_comment
from tests.standins.git_provider import FakeProviderServer
from tests.unit.summary.test_render import full_summary

pytestmark = pytest.mark.prefect

TOKEN = "ghp_fakeProviderToken42"


def test_artifact_is_created_inside_the_flow_run(prefect_server: None) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.runtime import flow_run

    secret = "artifact-secret-value-31"

    @flow(name="summary-artifact-test", persist_result=False)
    def summarise() -> tuple[str, str]:
        data = full_summary(name="pr-77", message=f"password={secret}")
        artifact_id = publish_summary_artifact(data, secret_values=[secret])
        return str(artifact_id), str(flow_run.id)

    artifact_id, run_id = summarise()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["env-pr-77"])))
    [artifact] = [a for a in artifacts if str(a.id) == artifact_id]
    assert artifact.type == "markdown" and artifact.flow_run_id == UUID(run_id)
    assert "https://pr-42-k3v9x0q2ma.preview.example.test" in str(artifact.data)
    assert secret not in str(artifact.data)


def _comments(server: FakeProviderServer) -> dict[str, dict[int, str]]:
    return server.state.threads


def test_github_comment_is_posted_then_updated_through_the_block(prefect_server: None) -> None:
    from blocks.webhooks import GitProviderToken

    with FakeProviderServer(TOKEN) as fake:
        GitProviderToken(provider="github", token=SecretStr(TOKEN), api_url=fake.url).save(
            "test-github-comments", overwrite=True)
        source = {"repository": "https://github.com/acme/orders-api.git", "pullRequest": 42}
        first = post_summary_comment(render_summary(full_summary()), "pr-42", source,
                                     "test-github-comments", connections=BlockConnections())
        second = post_summary_comment(render_summary(full_summary(status="failed")), "pr-42",
                                      source, "test-github-comments",
                                      connections=BlockConnections())
        assert first.created and not second.created and first.id == second.id
        [thread] = _comments(fake).values()
        [body] = thread.values()
        assert body.startswith(summary_marker("pr-42")) and "## ❌" in body
        methods = [(r.method, r.path) for r in fake.state.requests]
        assert ("POST", "/repos/acme/orders-api/issues/42/comments") in methods
        assert ("PATCH", f"/repos/acme/orders-api/issues/comments/{first.id}") in methods
        assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in fake.state.requests)


def test_gitlab_note_and_a_rejected_token() -> None:
    from blocks.webhooks import GitProviderToken

    with FakeProviderServer(TOKEN) as fake:
        good = GitProviderToken(provider="gitlab", token=SecretStr(TOKEN), api_url=fake.url)
        from envforge.summary.comments import PullRequestRef

        ref = PullRequestRef("gitlab", "group/sub/web", 7)
        with good.get_client() as commenter:
            made = commenter.upsert_summary(ref, "pr-7", render_summary({"name": "pr-7",
                                                                          "status": "completed"}))
            again = commenter.upsert_summary(ref, "pr-7", render_summary(
                {"name": "pr-7", "status": "destroyed"}))
        assert made.created and not again.created
        assert [r.method for r in fake.state.requests] == ["GET", "POST", "GET", "PUT"]
        assert fake.state.requests[1].path == "/projects/group%2Fsub%2Fweb/merge_requests/7/notes"

        wrong = "glpat-wrongToken000"
        bad = GitProviderToken(provider="gitlab", token=SecretStr(wrong), api_url=fake.url)
        with bad.get_client() as commenter, pytest.raises(ProviderCommentError) as info:
            commenter.upsert_summary(ref, "pr-7", "x")
        assert "401" in str(info.value) and wrong not in str(info.value)
        assert wrong not in repr(bad) and TOKEN not in repr(good)


