"""Prefect flows of the environment lifecycle: create (or update), destroy, extend, reap.

Orchestration only: the decisions are in envforge.environments.lifecycle and envforge.gitops,
the lock and the run's reports in envforge.environments. Every flow builds its services once
(flows.services) and hands them down. Every flow that changes one environment holds its lock
(``envforge-env-<name>``, limit 1), so one environment is worked on by one run at a time, and
different environments run in parallel. A second run for the same environment waits for the
first, at most ``ENVFORGE_ENV_LOCK_TIMEOUT`` seconds (default 1800), then fails saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum, StrEnum
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from blocks.loader import send_notification
from envforge.core.config import PROJECT_ROOT
from envforge.environments import locks
from envforge.environments.change_intents import change_recorded, recover_killed_change
from envforge.environments.feedback import made_by, report_pull_request_state, summarise_run
from envforge.environments.forms import (
    environment_signature,
    resolve_credential_references,
    submission_from_form,
)
from envforge.environments.intents import (
    CreateIntent,
    abandon_create,
    begin_create,
    end_create,
    recover_killed_create,
)
from envforge.environments.lifecycle import (
    EnvironmentRequest,
    decide_reaping,
    plan_environment,
    refresh_plan,
    release_resources,
    with_health_wait,
)
from envforge.environments.sleep import wake_environment
from envforge.errors import ConfigurationError, EnvforgeError, StepFailedError
from envforge.gitops.repository import open_store
from envforge.run.runner import TemplateRun
from envforge.services import Services
from envforge.settings import load_settings as load_envforge_settings
from envforge.summary.fleet import refresh_fleet
from envforge.summary.pr_status import EnvironmentState
from envforge.templating.loader import TemplateCatalog
from flows.run_template import run_steps_as_tasks
from flows.services import flow_services


def _catalog(services: Services | None = None) -> TemplateCatalog:
    settings = services.settings if services else load_envforge_settings()
    return TemplateCatalog(settings.paths.templates_path)


def _template_names() -> list[str]:
    """The project's templates and those of ENVFORGE_TEMPLATES_PATH (fixed when this module
    is imported, as a form's choices must be; a name the catalog cannot find at run time is
    a clear TemplateNotFoundError)."""
    project = TemplateCatalog([PROJECT_ROOT / "templates"]).names()
    return sorted(set(project) | set(_catalog().names()))


# The run form shows templates and environment types as drop-downs.
TemplateName = Enum(  # type: ignore[misc]
    "TemplateName", {n.replace("-", "_"): n for n in _template_names()} or {"none": "none"},
    type=str,
)


class EnvironmentType(StrEnum):
    """What an environment is for; drives its default TTL and the form's choices."""
    preview = "preview"
    development = "development"
    staging = "staging"


class SourceRef(BaseModel):
    """Where the environment's code comes from."""

    repository: str | None = Field(None, description="Git URL of the application")
    branch: str | None = Field(None, description="Branch under review")
    pullRequest: int | None = Field(None, description="Pull request number")
    commit: str | None = Field(None, description="Commit to deploy")


@contextmanager
def environment_lock(name: str, services: Services) -> Iterator[None]:
    """One run per environment name at a time, waiting up to the settings' lock timeout."""
    with locks.environment_lock(name, services.settings.lifecycle.env_lock_timeout):
        yield


def _run_id() -> str:
    return str(flow_run.id or "local")


@flow(name="create-environment", persist_result=False)
def create_environment(
    name: str,
    template: TemplateName | None = None,
    parameters: dict[str, Any] | None = None,
    environment_type: EnvironmentType = EnvironmentType.preview,
    ttl: str | None = None,
    source: SourceRef | None = None,
    owner: str | None = None,
    wait_healthy: bool = False,
    wait_timeout_seconds: float = 600.0,
    cluster_block: str | None = None,
) -> dict[str, Any]:
    """Create an environment from a template, or update it if it exists.

    Args:
        name: environment name (a DNS label, e.g. pr-42).
        template: template to create it from (not needed to update).
        parameters: the template's parameter values.
        environment_type: preview, development or staging.
        ttl: time to live, e.g. 48h or 3d (default from settings).
        source: repository, branch, pull request and commit of the code.
        owner: owner, e.g. group:team-a (default: the template's owner parameter).
        wait_healthy: wait until Argo CD has synced it and it is healthy; roll back if not.
        wait_timeout_seconds: how long to wait for that.
        cluster_block: KubernetesCluster block of the target cluster (default KUBECONFIG).
    """
    request = EnvironmentRequest(
        name=name,
        template=template.value if isinstance(template, Enum) else template,
        parameters=dict(parameters or {}),
        environment_type=EnvironmentType(environment_type).value,
        ttl=ttl,
        source=source.model_dump(exclude_none=True) if source else None,
        owner=owner,
    )
    return _create_or_update(request, wait_healthy, wait_timeout_seconds, cluster_block,
                             flow_services())


def _create_or_update(request: EnvironmentRequest, wait_healthy: bool,
                      wait_timeout_seconds: float, cluster_block: str | None,
                      services: Services) -> dict[str, Any]:
    """The body of both create entry points: plan, lock, run the steps, summarise."""
    logger = get_run_logger()
    # every check before any side effect
    plan = plan_environment(request, _catalog(services), services)
    if wait_healthy:
        plan = with_health_wait(plan, wait_timeout_seconds, cluster_block)
    logger.info("%s environment %s from template %s", plan.mode, plan.name, plan.template.name)
    source = plan.environment.get("source") or dict(request.source or {})
    with environment_lock(plan.name, services):
        _pull_request_state(services, plan.name, source, "in_progress")
        if plan.mode == "update":  # a new deployment (a new commit on the PR) wakes it
            with open_store(services=services) as store:
                wake_environment(store, plan.name, "new deployment", _run_id())
        run = TemplateRun(plan.template, plan.parameters, environment=plan.environment,
                          run_id=_run_id(), services=services)
        intent: CreateIntent | None = None
        if plan.mode == "create":  # recorded before anything is made (a kill -9 is cleanable)
            cleaned = recover_killed_create(services, plan.name, committed=False)
            if cleaned is not None:
                logger.warning("%s", cleaned.summary())
            intent = begin_create(services, plan.name, plan.template, run.run_id,
                                  str(plan.environment.get("namespace") or plan.name),
                                  plan.environment.get("owner"))
        outcome = "interrupted"  # a termination leaves the intent: the process ends
        try:
            if intent is not None:
                result = run_steps_as_tasks(run)
            else:  # an update: what it pushes before its commit is recorded too
                with change_recorded(services, plan.name, "update", run.run_id) as changed:
                    if changed is not None:
                        logger.warning("%s", changed.summary())
                    result = run_steps_as_tasks(run)
            outcome = "clean"
        except Exception as e:
            # rolled back cleanly: nothing left; otherwise the next run cleans up after it
            clean = isinstance(e, StepFailedError) and not e.rollback_failures
            outcome = "clean" if clean else "abandoned"
            if not isinstance(e, EnvforgeError):
                raise
            diagnosis = getattr(e.__cause__, "diagnosis", None)  # argocd:wait's pod events/logs
            _summary(services, plan.name, {"template": plan.template.name, "steps": [
                r.__dict__ for r in run.reports]}, "rolled-back", plan.mode,
                source=dict(request.source) if request.source else None, message=str(e),
                diagnostics=[{"title": "Cluster diagnosis", "text": diagnosis}]
                if diagnosis else [])
            _pull_request_state(services, plan.name, source, "failure")
            raise
        finally:
            run.close()
            if intent is not None and outcome == "clean":
                end_create(services, intent)
            elif intent is not None and outcome == "abandoned":
                abandon_create(services, intent)
    gitops = next((out for sid, out in run.outputs.items()
                   if any(s.id == sid and s.action == "publish:gitops"
                          for s in plan.template.spec.steps)), {})
    url = run.outputs.get("wait-healthy", {}).get("url") or gitops.get("url")
    _summary(services, plan.name, result, "completed", plan.mode,
             source=dict(request.source) if request.source else None, url=url,
             **made_by(plan.template.spec.steps, run.outputs))
    _pull_request_state(services, plan.name, source, "success", url=url)
    return {"name": plan.name, "mode": plan.mode, "url": url,
            "commit": gitops.get("commitHash"), "run": result}


def _create_environment_from_form(**fields: Any) -> dict[str, Any]:
    """``create-environment/<template>``: the deployment's form (environment fields, then the
    template's) for the template named by ENVFORGE_TEMPLATE; credential fields arrive as
    Vault references and are read here, so no value is ever a run parameter."""
    services = flow_services()
    template_ref = services.settings.runner.template
    if not template_ref:
        raise ConfigurationError(
            "ENVFORGE_TEMPLATE is not set: run this flow through a create-environment/<template> "
            "deployment registered by 'envforge deploy', or use create-environment")
    submission = submission_from_form(_catalog(services).load(template_ref), fields)
    request = EnvironmentRequest(
        name=submission.name, template=template_ref,
        parameters=resolve_credential_references(submission, services.connections,
                                                 services.capabilities.vault_scope),
        environment_type=EnvironmentType(submission.environment_type).value,
        ttl=submission.ttl, source=submission.source, owner=submission.owner)
    return _create_or_update(request, wait_healthy=False, wait_timeout_seconds=600.0,
                             cluster_block=None, services=services)


# As with scaffold: Prefect binds a run's parameters to the flow function's signature, so the
# form entry point takes its signature from the form of the template its deployment names.
_FORM_TEMPLATE = load_envforge_settings().runner.template
if _FORM_TEMPLATE:
    _create_environment_from_form.__signature__ = (  # type: ignore[attr-defined]
        environment_signature(_catalog().load(_FORM_TEMPLATE)))
create_environment_from_form = flow(name="create-environment", persist_result=False)(
    _create_environment_from_form)


@flow(name="destroy-environment", persist_result=False)
def destroy_environment(name: str, database_block: str | None = None,
                        cluster_block: str | None = None,
                        wait_pruned_seconds: float = 0.0) -> dict[str, Any]:
    """Remove an environment: one commit takes its files out of the GitOps repository (Argo
    CD prunes what it deployed, namespace included), then its database (only if envforge made
    it) and its Secrets are removed.

    Args:
        name: the environment.
        database_block: DatabaseServer block of its database (default: PG* variables).
        cluster_block: KubernetesCluster block (default: KUBECONFIG or in-cluster).
        wait_pruned_seconds: wait up to this long until Argo CD has deleted the Application
            and the namespace is gone (a name can only be created again then); 0 does not
            wait and reports the prune as pending.
    """
    logger = get_run_logger()
    services = flow_services()
    with environment_lock(name, services), open_store(services=services) as store:
        if store.find(name) is None:  # nothing committed: maybe a killed create left resources
            cleaned = recover_killed_create(services, name, committed=False)
            if cleaned is not None:
                logger.info("%s", cleaned.summary())
                return {"name": name, "commit": None, "databases": cleaned.databases,
                        "secrets": cleaned.secrets, "problems": [], "prune": "none"}
        record = store.get(name, "destroy")
        changed = recover_killed_change(services, name)  # a killed update's image, if any
        if changed is not None:
            logger.info("%s", changed.summary())
        result = store.destroy(name, _run_id())
        recover_killed_create(services, name, committed=True)  # a stale intent, if any
        released = release_resources(name, record.status.namespace, services, database_block,
                                     cluster_block)
        prune = "pending"
        if wait_pruned_seconds > 0:  # under the lock: no create of this name meanwhile
            from envforge.cluster.wait import wait_for_environment_pruned
            from envforge.errors import ClusterError

            try:
                waited = wait_for_environment_pruned(
                    name, record.status.namespace, timeout_seconds=wait_pruned_seconds,
                    cluster_block=cluster_block, connections=services.connections)
                prune = f"done after {waited:.0f}s"
            except ClusterError as e:  # the commit stands; say what is still there
                released.problems.append(f"prune pending: {e}")
    logger.info("destroyed %s (commit %s); dropped %s; deleted Secrets %s; prune %s", name,
                result.commit, released.databases or "no database",
                released.secrets or "none", prune)
    for problem in released.problems:
        logger.error("%s: %s (remove it by hand, or run destroy again)", name, problem)
    source = record.spec.source.model_dump(exclude_none=True)  # its pull request, if any
    _summary(services, name, {}, "destroyed", "destroy", source=source,
             message="; ".join(released.problems) or None)
    _pull_request_state(services, name, source, "inactive")
    return {"name": name, "commit": result.commit, "databases": released.databases,
            "secrets": released.secrets, "problems": released.problems, "prune": prune}


@flow(name="extend-environment", persist_result=False)
def extend_environment(name: str, ttl: str = "24h") -> dict[str, Any]:
    """Push an environment's expiry to now + ttl (never shortens it)."""
    services = flow_services()
    with environment_lock(name, services), open_store(services=services) as store:
        result = store.extend(name, ttl, _run_id())
    assert result.record is not None
    expires = result.record.status.expiresAt.isoformat()
    get_run_logger().info("%s now expires at %s", name, expires)
    refresh_fleet(services, get_run_logger())  # the fleet table's expiry and state, as of now
    return {"name": name, "expiresAt": expires, "commit": result.commit}


@flow(name="bind-domain", persist_result=False)
def bind_domain(name: str, host: str) -> dict[str, Any]:
    """Serve an environment on a custom host too (an extra Ingress on the same Service).

    Args:
        name: the environment.
        host: the custom host, e.g. shop.example.com; refused if another environment has it.
    """
    services = flow_services()
    with environment_lock(name, services), open_store(services=services) as store:
        result = store.bind_domain(name, host, _run_id())
    get_run_logger().info("%s now also answers at https://%s%s", name, host,
                          "" if result.commit else " (already bound; nothing committed)")
    return {"name": name, "host": host, "url": f"https://{host}", "commit": result.commit}


@flow(name="refresh-environment-data", persist_result=False)
def refresh_environment_data(name: str) -> dict[str, Any]:
    """Rebuild one environment's database the way its template made it (seed, snapshot
    restore or anonymised clone), replacing the current data."""
    services = flow_services()
    with environment_lock(name, services):
        with open_store(services=services) as store:
            record = store.get(name, "refresh")
        plan = refresh_plan(record, _catalog(services))
        run = TemplateRun(plan.template, plan.parameters, environment=plan.environment,
                          run_id=_run_id(), services=services)
        try:
            result = run_steps_as_tasks(run)
        finally:
            run.close()
    _summary(services, name, result, "refreshed", "refresh",
             **made_by(plan.template.spec.steps, run.outputs))
    return {"name": name, "steps": [s["id"] for s in result["steps"]
                                    if s["status"] == "completed"]}


@flow(name="refresh-data", persist_result=False)
def refresh_data(names: list[str] | None = None, max_concurrent: int = 2) -> dict[str, Any]:
    """Nightly: refresh the data of the environments that opted in (parameter
    ``refreshData: true``), or of the ones named; at most ``max_concurrent`` at once.

    Args:
        names: refresh exactly these environments (default: every one that opted in).
        max_concurrent: environments refreshed in parallel.
    """
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    logger = get_run_logger()
    with open_store(services=flow_services()) as store:
        records = store.list()
    chosen = [r.name for r in records
              if (r.name in names if names else bool(r.spec.parameters.get("refreshData")))]
    missing = sorted(set(names or []) - {r.name for r in records})
    for name in missing:
        logger.error("no environment named %s; skipped", name)
    refreshed: list[str] = []
    failed: list[str] = []

    def refresh(name: str) -> None:
        """Refresh one environment; a failure is logged and counted, not raised."""
        try:
            refresh_environment_data(name)
            refreshed.append(name)
        except EnvforgeError as e:  # one environment's failure must not stop the rest
            logger.error("could not refresh %s: %s", name, e)
            failed.append(name)

    # Each refresh is a subflow run (its own lock, task runs and summary); the copied
    # context makes Prefect record it under this run even though it runs in another thread.
    with ThreadPoolExecutor(max_workers=max(1, max_concurrent)) as pool:
        futures = [pool.submit(contextvars.copy_context().run, refresh, name)
                   for name in chosen]
        for future in futures:
            future.result()
    return {"refreshed": sorted(refreshed), "failed": sorted(failed + missing)}


@flow(name="reap-environments", persist_result=False)
def reap_environments(
    idle_days: float | None = None,
    warn_before_hours: float = 6.0,
    notification_block: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Destroy environments past their expiry (or unused for ``idle_days``); warn the owners
    of those expiring within ``warn_before_hours`` first.

    Args:
        idle_days: also destroy environments not deployed for this many days.
        warn_before_hours: warn about environments expiring this soon.
        notification_block: name of a Prefect notification block to warn owners through.
        dry_run: decide and report, destroy nothing.
    """
    from datetime import timedelta

    logger = get_run_logger()
    services = flow_services()
    with open_store(services=services) as store:
        records = store.list()
    decisions = decide_reaping(
        records, idle_days=idle_days, warn_before=timedelta(hours=warn_before_hours),
        sleep_counts=services.settings.lifecycle.sleep_counts_toward_expiry)
    owners = {r.name: r.spec.owner for r in records}
    destroyed, failed = [], []
    for decision in decisions:
        if decision.action == "warn":
            message = (f"environment {decision.name} (owner {owners[decision.name]}) "
                       f"{decision.reason}")
            logger.warning("%s", message)
            if notification_block:
                send_notification(notification_block, "envforge: environment expiring",
                                  message)
        elif decision.action == "destroy":
            logger.info("reaping %s: %s", decision.name, decision.reason)
            if dry_run:
                continue
            try:
                destroy_environment(decision.name)
                destroyed.append(decision.name)
            except EnvforgeError as e:  # one stuck environment must not stop the others
                logger.error("could not reap %s: %s", decision.name, e)
                failed.append(decision.name)
    return {"decisions": [d.__dict__ for d in decisions], "destroyed": destroyed,
            "failed": failed}


def _summary(services: Services, name: str, result: dict[str, Any], status: str,
             operation: str, source: dict[str, Any] | None = None, **extra: Any) -> None:
    """The run's summary artifact and, for a pull request, its comment (logged, not fatal)."""
    summarise_run(services, name, result, status, operation, get_run_logger(), source=source,
                  run_url=_run_url(), **extra)


def _pull_request_state(services: Services, name: str, source: dict[str, Any],
                        state: EnvironmentState, url: str | None = None) -> None:
    """The environment's state on its pull request (logged, not fatal)."""
    report_pull_request_state(services, name, source, state, get_run_logger(), url=url,
                              log_url=_run_url())


def _run_url() -> str | None:
    url = flow_run.ui_url
    return str(url) if url else None
