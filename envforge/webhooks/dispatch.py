"""Starting the Prefect deployment that matches a pull-request event.

Opened/updated → the create deployment with ``name=pr-<number>``, the repository's template
and the source commit; closed/merged → the destroy deployment with ``name``. Runs are created
with an idempotency key per provider, repository, number, head commit and action, so a
redelivered webhook returns the existing flow run instead of starting a second one. The
server never waits for the run (``timeout=0``): the provider only needs an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from envforge.errors import DispatchError, PrefectUnreachableError
from envforge.webhooks.events import IgnoredEvent, Operation, PullRequestEvent
from envforge.webhooks.mapping import TemplateMapping

DEFAULT_CREATE_DEPLOYMENT = "create-environment/create-environment"
DEFAULT_DESTROY_DEPLOYMENT = "destroy-environment/destroy-environment"

#: ``prefect.deployments.run_deployment`` or a stand-in with the same keyword arguments.
RunDeployment = Callable[..., Any]


@dataclass(frozen=True)
class DeploymentRequest:
    """What to start: a deployment by name, its parameters and the run's identity."""

    deployment: str
    parameters: dict[str, Any]
    idempotency_key: str
    flow_run_name: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class StartedRun:
    """The flow run Prefect created (or already had, for a repeated delivery)."""

    request: DeploymentRequest
    flow_run_id: str
    flow_run_name: str


def environment_name(event: PullRequestEvent) -> str:
    """The environment a pull request gets: ``pr-<number>``."""
    return f"pr-{event.number}"


def source_of(event: PullRequestEvent) -> dict[str, Any]:
    """The create flow's ``source``: exactly the fields of the Environment record's Source."""
    return {"repository": event.clone_url, "branch": event.branch,
            "pullRequest": event.number, "commit": event.head_sha}


@dataclass
class Dispatcher:
    """Plans and starts deployments for events; ``run`` is swappable for unit tests."""

    mapping: TemplateMapping
    create_deployment: str = DEFAULT_CREATE_DEPLOYMENT
    destroy_deployment: str = DEFAULT_DESTROY_DEPLOYMENT
    run: RunDeployment | None = field(default=None, repr=False)

    def plan(self, event: PullRequestEvent) -> DeploymentRequest | IgnoredEvent:
        """The deployment to start for ``event`` (pure: no Prefect call)."""
        entry = self.mapping.template_for(event.repository)
        if entry is None:
            return IgnoredEvent(
                f"repository {event.repository!r} has no template in the mapping and there is "
                "no default (add it to the --mapping file, or pass --template)"
            )
        if event.from_fork and not entry.allow_forks:
            return IgnoredEvent(
                f"{event.provider} pull request {event.repository}#{event.number} comes from "
                "a fork: not built (its code would get the environment's secrets); set "
                "allow_forks: true for the repository in the mapping to build forks"
            )
        name = environment_name(event)
        tags = ("envforge", "webhook", f"{event.provider}:{event.repository}#{event.number}")
        run_name = f"{name}-{event.action}-{event.head_sha[:7]}"
        if event.operation is Operation.DESTROY:
            return DeploymentRequest(self.destroy_deployment, {"name": name},
                                     event.idempotency_key, run_name, tags)
        parameters: dict[str, Any] = {
            "name": name,
            "template": entry.template,
            "parameters": dict(entry.parameters),
            "environment_type": entry.environment_type,
            "source": source_of(event),
        }
        if entry.ttl is not None:
            parameters["ttl"] = entry.ttl
        return DeploymentRequest(self.create_deployment, parameters, event.idempotency_key,
                                 run_name, tags)

    def dispatch(self, event: PullRequestEvent) -> StartedRun | IgnoredEvent:
        """Start the planned deployment; Prefect errors become DispatchError subclasses."""
        planned = self.plan(event)
        if isinstance(planned, IgnoredEvent):
            return planned
        return self.start(planned)

    def start(self, request: DeploymentRequest) -> StartedRun:
        run = self.run or _prefect_run_deployment()
        try:
            flow_run = run(
                request.deployment,
                parameters=request.parameters,
                idempotency_key=request.idempotency_key,
                flow_run_name=request.flow_run_name,
                tags=list(request.tags),
                timeout=0,
                as_subflow=False,
            )
        except Exception as e:
            raise _dispatch_error(request.deployment, e) from e
        return StartedRun(request, str(flow_run.id), str(flow_run.name))


def _prefect_run_deployment() -> RunDeployment:
    from prefect.deployments import run_deployment

    return run_deployment


def _dispatch_error(deployment: str, error: Exception) -> DispatchError:
    """Map Prefect and transport errors to one envforge error, at this one boundary."""
    import httpx
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    if isinstance(error, ObjectNotFound):
        return DispatchError(
            f"deployment {deployment!r} not found on the Prefect server: register it "
            "('prefect --no-prompt deploy --all') or name another with "
            "--create-deployment/--destroy-deployment"
        )
    if isinstance(error, PrefectHTTPStatusError):
        status = error.response.status_code
        if status >= 500:
            return PrefectUnreachableError(
                f"Prefect API answered {status} starting {deployment!r}; try again"
            )
        detail = error.response.text[:300]
        return DispatchError(f"Prefect refused a run of {deployment!r} ({status}): {detail}")
    if isinstance(error, httpx.TransportError | OSError):
        return PrefectUnreachableError(
            f"the Prefect API did not answer starting {deployment!r} "
            f"({type(error).__name__}); check PREFECT_API_URL and that the server is up"
        )
    return DispatchError(f"starting {deployment!r} failed: {type(error).__name__}: {error}")
