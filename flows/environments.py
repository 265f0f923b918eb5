"""Prefect flows of the environment lifecycle: create (or update), destroy, extend, reap.

Orchestration only: the decisions are in envforge.lifecycle and envforge.gitops. Every flow
that changes one environment holds a Prefect global concurrency limit named after it
(``envforge-env-<name>``, limit 1), so one environment is worked on by one run at a time, and
different environments run in parallel. A second run for the same environment waits for the
first, at most ``ENVFORGE_ENV_LOCK_TIMEOUT`` seconds (default 1800), then fails saying so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import Enum, StrEnum
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from envforge.config import PROJECT_ROOT, load_settings
from envforge.environment_forms import (
    environment_signature,
    resolve_credential_references,
    submission_from_form,
)
from envforge.errors import ConfigurationError, EnvforgeError, EnvironmentLockTimeoutError
from envforge.gitops.repository import open_store
from envforge.lifecycle import (
    EnvironmentRequest,
    decide_reaping,
    plan_environment,
    refresh_plan,
    release_resources,
    with_health_wait,
)
from envforge.runner import TemplateRun
from envforge.sleep import sleep_counts_toward_expiry, wake_environment
from envforge.summary.artifact import publish_summary_artifact
from envforge.summary.comments import post_summary_comment
from envforge.summary.model import EnvironmentSummary, database_from_output, image_from_output
from envforge.summary.pr_status import EnvironmentState, report_environment_state
from envforge.summary.render import render_summary
from envforge.templating.loader import TemplateCatalog
from flows.run_template import run_steps_as_tasks


def _catalog() -> TemplateCatalog:
    return TemplateCatalog(load_settings().templates_path)


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
def environment_lock(name: str) -> Iterator[None]:
    """One run per environment name at a time (a Prefect global concurrency limit of 1)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    limit = f"envforge-env-{name}"
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(limit)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it first
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=limit, limit=1))
    timeout = float(os.environ.get("ENVFORGE_ENV_LOCK_TIMEOUT", "1800"))
    try:
        with concurrency(limit, occupy=1, timeout_seconds=timeout, strict=True):
            yield
    except TimeoutError as e:
        raise EnvironmentLockTimeoutError(
            f"environment {name!r} is being changed by another run and stayed locked for "
            f"{timeout:g} s; try again when that run has finished"
        ) from e


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
    return _create_or_update(request, wait_healthy, wait_timeout_seconds, cluster_block)


def _create_or_update(request: EnvironmentRequest, wait_healthy: bool,
                      wait_timeout_seconds: float, cluster_block: str | None) -> dict[str, Any]:
    """The body of both create entry points: plan, lock, run the steps, summarise."""
    logger = get_run_logger()
    plan = plan_environment(request, _catalog())  # every check before any side effect
    if wait_healthy:
        plan = with_health_wait(plan, wait_timeout_seconds, cluster_block)
    logger.info("%s environment %s from template %s", plan.mode, plan.name, plan.template.name)
    source = plan.environment.get("source") or dict(request.source or {})
    with environment_lock(plan.name):
        _pull_request_state(plan.name, source, "in_progress")
        if plan.mode == "update":  # a new deployment (a new commit on the PR) wakes it
            with open_store() as store:
                wake_environment(store, plan.name, "new deployment", _run_id())
        run = TemplateRun(plan.template, plan.parameters, environment=plan.environment,
                          run_id=_run_id())
        try:
            result = run_steps_as_tasks(run)
        except EnvforgeError as e:
            diagnosis = getattr(e.__cause__, "diagnosis", None)  # argocd:wait's pod events/logs
            _summary(plan.name, {"template": plan.template.name, "steps": [
                r.__dict__ for r in run.reports]}, "rolled-back", plan.mode,
                source=dict(request.source) if request.source else None, message=str(e),
                diagnostics=[{"title": "Cluster diagnosis", "text": diagnosis}]
                if diagnosis else [])
            _pull_request_state(plan.name, source, "failure")
            raise
        finally:
            run.close()
    gitops = next((out for sid, out in run.outputs.items()
                   if any(s.id == sid and s.action == "publish:gitops"
                          for s in plan.template.spec.steps)), {})
    url = run.outputs.get("wait-healthy", {}).get("url") or gitops.get("url")
    _summary(plan.name, result, "completed", plan.mode,
             source=dict(request.source) if request.source else None, url=url,
             **_made_by(plan.template.spec.steps, run.outputs))
    _pull_request_state(plan.name, source, "success", url=url)
    return {"name": plan.name, "mode": plan.mode, "url": url,
            "commit": gitops.get("commitHash"), "run": result}


def _create_environment_from_form(**fields: Any) -> dict[str, Any]:
    """``create-environment/<template>``: the deployment's form (environment fields, then the
    template's) for the template named by ENVFORGE_TEMPLATE; credential fields arrive as
    Vault references and are read here, so no value is ever a run parameter."""
    template_ref = os.environ.get("ENVFORGE_TEMPLATE")
    if not template_ref:
        raise ConfigurationError(
            "ENVFORGE_TEMPLATE is not set: run this flow through a create-environment/<template> "
            "deployment registered by 'envforge deploy', or use create-environment")
    submission = submission_from_form(_catalog().load(template_ref), fields)
    request = EnvironmentRequest(
        name=submission.name, template=template_ref,
        parameters=resolve_credential_references(submission),
        environment_type=EnvironmentType(submission.environment_type).value,
        ttl=submission.ttl, source=submission.source, owner=submission.owner)
    return _create_or_update(request, wait_healthy=False, wait_timeout_seconds=600.0,
                             cluster_block=None)


# As with scaffold: Prefect binds a run's parameters to the flow function's signature, so the
# form entry point takes its signature from the form of the template its deployment names.
_FORM_TEMPLATE = os.environ.get("ENVFORGE_TEMPLATE")
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
    with environment_lock(name), open_store() as store:
        record = store.get(name, "destroy")
        result = store.destroy(name, _run_id())
        released = release_resources(name, record.status.namespace, database_block,
                                     cluster_block)
        prune = "pending"
        if wait_pruned_seconds > 0:  # under the lock: no create of this name meanwhile
            from envforge.cluster.wait import wait_for_environment_pruned
            from envforge.errors import ClusterError

            try:
                waited = wait_for_environment_pruned(
                    name, record.status.namespace, timeout_seconds=wait_pruned_seconds,
                    cluster_block=cluster_block)
                prune = f"done after {waited:.0f}s"
            except ClusterError as e:  # the commit stands; say what is still there
                released.problems.append(f"prune pending: {e}")
    logger.info("destroyed %s (commit %s); dropped %s; deleted Secrets %s; prune %s", name,
                result.commit, released.databases or "no database",
                released.secrets or "none", prune)
    for problem in released.problems:
        logger.error("%s: %s (remove it by hand, or run destroy again)", name, problem)
    source = record.spec.source.model_dump(exclude_none=True)  # its pull request, if any
    _summary(name, {}, "destroyed", "destroy", source=source,
             message="; ".join(released.problems) or None)
    _pull_request_state(name, source, "inactive")
    return {"name": name, "commit": result.commit, "databases": released.databases,
            "secrets": released.secrets, "problems": released.problems, "prune": prune}


@flow(name="extend-environment", persist_result=False)
def extend_environment(name: str, ttl: str = "24h") -> dict[str, Any]:
    """Push an environment's expiry to now + ttl (never shortens it)."""
    with environment_lock(name), open_store() as store:
        result = store.extend(name, ttl, _run_id())
    assert result.record is not None
    expires = result.record.status.expiresAt.isoformat()
    get_run_logger().info("%s now expires at %s", name, expires)
    return {"name": name, "expiresAt": expires, "commit": result.commit}


@flow(name="bind-domain", persist_result=False)
def bind_domain(name: str, host: str) -> dict[str, Any]:
    """Serve an environment on a custom host too (an extra Ingress on the same Service).

    Args:
        name: the environment.
        host: the custom host, e.g. shop.example.com; refused if another environment has it.
    """
    with environment_lock(name), open_store() as store:
        result = store.bind_domain(name, host, _run_id())
    get_run_logger().info("%s now also answers at https://%s%s", name, host,
                          "" if result.commit else " (already bound; nothing committed)")
    return {"name": name, "host": host, "url": f"https://{host}", "commit": result.commit}


@flow(name="refresh-environment-data", persist_result=False)
def refresh_environment_data(name: str) -> dict[str, Any]:
    """Rebuild one environment's database the way its template made it (seed, snapshot
    restore or anonymised clone), replacing the current data."""
    with environment_lock(name):
        with open_store() as store:
            record = store.get(name, "refresh")
        plan = refresh_plan(record, _catalog())
        run = TemplateRun(plan.template, plan.parameters, environment=plan.environment,
                          run_id=_run_id())
        try:
            result = run_steps_as_tasks(run)
        finally:
            run.close()
    _summary(name, result, "refreshed", "refresh", **_made_by(plan.template.spec.steps,
                                                              run.outputs))
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
    with open_store() as store:
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
    with open_store() as store:
        records = store.list()
    decisions = decide_reaping(records, idle_days=idle_days,
                               warn_before=timedelta(hours=warn_before_hours),
                               sleep_counts=sleep_counts_toward_expiry())
    owners = {r.name: r.spec.owner for r in records}
    destroyed, failed = [], []
    for decision in decisions:
        if decision.action == "warn":
            message = (f"environment {decision.name} (owner {owners[decision.name]}) "
                       f"{decision.reason}")
            logger.warning("%s", message)
            if notification_block:
                _notify_owner(notification_block, message)
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


def _notify_owner(block_name: str, message: str) -> None:
    from prefect.blocks.core import Block

    block: Any = Block.load(block_name)  # sync here: Prefect's load is sync_compatible
    block.notify(body=message, subject="envforge: environment expiring")


def _summary(name: str, result: dict[str, Any], status: str, operation: str,
             source: dict[str, Any] | None = None, **extra: Any) -> None:
    """A markdown artifact per run and, for a pull request when ENVFORGE_PR_COMMENT_BLOCK
    names a GitProviderToken block, the same summary as a PR comment. Failing to store either
    is logged, not fatal: the environment itself is what the run was for."""
    try:
        summary = EnvironmentSummary.from_run_result(
            name, result, status=status, operation=operation, source=source or {},
            run_url=_run_url(), **extra)
        publish_summary_artifact(summary)
        block = os.environ.get("ENVFORGE_PR_COMMENT_BLOCK")
        if block and source and source.get("pullRequest"):
            post_summary_comment(render_summary(summary), name, source, block)
    except EnvforgeError as e:
        get_run_logger().warning("%s", e)


def _pull_request_state(name: str, source: dict[str, Any], state: EnvironmentState,
                        url: str | None = None) -> None:
    """The environment's state on its pull request (commit status, GitHub Deployment or GitLab
    environment) when ENVFORGE_PR_STATUS_BLOCK (default: ENVFORGE_PR_COMMENT_BLOCK) names a
    GitProviderToken block. A failure is logged, not fatal, as for the summary comment."""
    block = (os.environ.get("ENVFORGE_PR_STATUS_BLOCK")
             or os.environ.get("ENVFORGE_PR_COMMENT_BLOCK"))
    if not block or not source.get("pullRequest"):
        return
    try:
        report_environment_state(block, name, source, state, url=url, log_url=_run_url())
    except EnvforgeError as e:
        get_run_logger().warning("pull request status %s of %s not set: %s", state, name, e)


def _made_by(steps: list[Any], outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Images (with digests) and databases (strategy, rows) the run's steps made."""
    images, databases = [], []
    for step in steps:
        output = outputs.get(step.id)
        if output is None:
            continue  # skipped
        if step.action == "image:build":
            images.append(image_from_output(output))
        elif step.action in ("db:seed", "db:restore", "db:clone"):
            databases.append(database_from_output(output, step.action.split(":")[1]))
    return {"images": images, "databases": databases}


def _run_url() -> str | None:
    url = flow_run.ui_url
    return str(url) if url else None
