from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prefect.exceptions import ObjectNotFound

from envforge.errors import DispatchError, PrefectUnreachableError
from envforge.webhooks.dispatch import (
    DEFAULT_CREATE_DEPLOYMENT,
    DEFAULT_DESTROY_DEPLOYMENT,
    DeploymentRequest,
    Dispatcher,
    StartedRun,
)
from envforge.webhooks.events import IgnoredEvent, PullRequestEvent, parse_github_event
from envforge.webhooks.mapping import TemplateMapping
from tests.unit.webhooks.payloads import github_pull_request


class RecordingRun:
    """Stands in for prefect.deployments.run_deployment and records its calls."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.error = error

    def __call__(self, name: str, **kwargs: Any) -> Any:
        self.calls.append((name, kwargs))
        if self.error:
            raise self.error
        return SimpleNamespace(id=f"run-{len(self.calls)}", name=kwargs["flow_run_name"])


def _event(action: str = "opened", **kw: Any) -> PullRequestEvent:
    event = parse_github_event("pull_request", github_pull_request(action, **kw))
    assert isinstance(event, PullRequestEvent)
    return event


MAPPING = TemplateMapping.from_data({
    "repositories": {"acme/orders-api": {"template": "python-service",
                                         "parameters": {"replicas": 1}, "ttl": "2d"}}})


def test_opened_starts_the_create_deployment_with_the_flow_parameters() -> None:
    run = RecordingRun()
    started = Dispatcher(MAPPING, run=run).dispatch(_event(number=42, sha="1" * 40))
    assert isinstance(started, StartedRun)
    [(name, kwargs)] = run.calls
    assert name == DEFAULT_CREATE_DEPLOYMENT
    assert kwargs["parameters"] == {
        "name": "pr-42",
        "template": "python-service",
        "parameters": {"replicas": 1},
        "environment_type": "preview",
        "ttl": "2d",
        "source": {"repository": "https://github.com/acme/orders-api.git",
                   "branch": "feature/x", "pullRequest": 42, "commit": "1" * 40},
    }
    assert kwargs["idempotency_key"] == f"github:acme/orders-api:42:{'1' * 40}:opened"
    assert kwargs["timeout"] == 0 and kwargs["as_subflow"] is False
    assert started.flow_run_id == "run-1"


def test_closed_starts_the_destroy_deployment_with_only_the_name() -> None:
    run = RecordingRun()
    Dispatcher(MAPPING, run=run).dispatch(_event("closed", number=5, closed_at="t1"))
    [(name, kwargs)] = run.calls
    assert name == DEFAULT_DESTROY_DEPLOYMENT
    assert kwargs["parameters"] == {"name": "pr-5"}


def test_deployment_names_are_configurable() -> None:
    run = RecordingRun()
    dispatcher = Dispatcher(MAPPING, "mine/create", "mine/destroy", run=run)
    dispatcher.dispatch(_event("opened"))
    dispatcher.dispatch(_event("closed", closed_at="t"))
    assert [name for name, _ in run.calls] == ["mine/create", "mine/destroy"]


def test_default_mapping_without_ttl_omits_ttl() -> None:
    planned = Dispatcher(TemplateMapping.from_data({"default": "node-service"})).plan(
        _event(repository="other/repo"))
    assert isinstance(planned, DeploymentRequest)
    assert planned.parameters["template"] == "node-service"
    assert "ttl" not in planned.parameters


def test_unmapped_repository_is_ignored_and_nothing_starts() -> None:
    run = RecordingRun()
    result = Dispatcher(MAPPING, run=run).dispatch(_event(repository="acme/unknown"))
    assert isinstance(result, IgnoredEvent) and "'acme/unknown'" in result.reason
    assert run.calls == []


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (ObjectNotFound(http_exc=Exception("404")), DispatchError, "not found on the Prefect"),
        (httpx.ConnectError("refused"), PrefectUnreachableError, "did not answer"),
        (RuntimeError("boom"), DispatchError, "RuntimeError: boom"),
    ],
)
def test_prefect_errors_are_wrapped(error: Exception, kind: type[Exception], text: str) -> None:
    with pytest.raises(kind, match=text) as info:
        Dispatcher(MAPPING, run=RecordingRun(error)).dispatch(_event())
    assert DEFAULT_CREATE_DEPLOYMENT in str(info.value)


def test_pull_requests_from_forks_are_ignored_unless_allowed() -> None:
    fork = _event(head_repository="mallory/orders-api")
    assert fork.from_fork
    run = RecordingRun()
    result = Dispatcher(MAPPING, run=run).dispatch(fork)
    assert isinstance(result, IgnoredEvent) and "fork" in result.reason and run.calls == []
    allowing = TemplateMapping.from_data({"default": {"template": "t", "allow_forks": True}})
    assert isinstance(Dispatcher(allowing, run=run).dispatch(fork), StartedRun)


def test_gitlab_fork_is_detected() -> None:
    from envforge.webhooks.events import parse_gitlab_event
    from tests.unit.webhooks.payloads import gitlab_merge_request

    fork = parse_gitlab_event("Merge Request Hook", gitlab_merge_request(source_project_id=5))
    same = parse_gitlab_event("Merge Request Hook", gitlab_merge_request())
    assert isinstance(fork, PullRequestEvent) and fork.from_fork
    assert isinstance(same, PullRequestEvent) and not same.from_fork
