"""Prefect flows that run templates: each step is its own task run named after the step.

Orchestration only; the work is in envforge.run.runner. `run_template` takes a template name (or
path) and its parameters; `scaffold` is what the per-template deployments registered by
`envforge deploy` run: its parameters are exactly the template's form, and the template comes
from the ENVFORGE_TEMPLATE variable the deployment sets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from blocks.loading import load_block
from envforge.actions.base import ActionOutput
from envforge.actions.ownership import CLAIMED_ENVIRONMENT
from envforge.core.config import load_settings
from envforge.environments.deployments import template_signature
from envforge.errors import ConfigurationError, TemporaryError
from envforge.run.run_secrets import parse_block_specs
from envforge.run.runner import PreparedStep, TemplateRun
from envforge.services import Services
from envforge.settings import load_settings as load_envforge_settings
from envforge.templating.loader import TemplateCatalog
from flows.services import flow_services


def _retry_only_temporary(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry errors marked TemporaryError, never permanent ones."""
    try:
        state.result()
    except TemporaryError:
        return True
    except Exception:
        return False
    return False


@task(cache_policy=NO_CACHE, persist_result=False)
def run_step(run: TemplateRun, prepared: PreparedStep) -> ActionOutput:
    """One step as a Prefect task (options set per step by execute_step_as_task)."""
    return run.execute(prepared, get_run_logger())


@task(cache_policy=NO_CACHE, persist_result=False)
def rollback_step(run: TemplateRun, prepared: PreparedStep, output: ActionOutput) -> None:
    """One completed step's rollback as a Prefect task."""
    run.rollback(prepared, output, get_run_logger())


def execute_step_as_task(run: TemplateRun, prepared: PreparedStep) -> ActionOutput:
    """Run one prepared step as its own task run: named after the step, the action's retries,
    retrying only TemporaryErrors. The executor handed to ``TemplateRun.run``."""
    step_task = run_step.with_options(
        name=prepared.action.id,
        task_run_name=prepared.step.id,
        # envforge-db, envforge-image, ...: tag concurrency limits (scripts/prefect-local.sh)
        # bound the steps that load PostgreSQL or the registry when many runs start at once
        tags={f"envforge-{prepared.action.id.split(':')[0]}"},
        retries=prepared.action.retries,
        retry_delay_seconds=prepared.action.retry_delay_seconds,
        retry_condition_fn=_retry_only_temporary,
    )
    # quote(): Prefect must not walk these objects looking for futures; mypy cannot see
    # through it, hence the ignore.
    result: ActionOutput = step_task(quote(run), quote(prepared))  # type: ignore[call-overload]
    return result


def rollback_step_as_task(run: TemplateRun, prepared: PreparedStep, output: ActionOutput
                          ) -> None:
    """Undo one completed step as its own ``rollback-<step id>`` task run."""
    rollback_step.with_options(
        name=f"rollback {prepared.action.id}", task_run_name=f"rollback-{prepared.step.id}"
    )(quote(run), quote(prepared), quote(output))  # type: ignore[call-overload]


def run_steps_as_tasks(run: TemplateRun) -> dict[str, Any]:
    """Run ``run``'s steps (and any rollbacks) as task runs; the run's result as a dict (each
    step report goes to the run's services' step listeners)."""
    return run.run(execute_step_as_task, rollback_step_as_task).to_dict()


def load_secret_blocks(specs: Sequence[str]) -> dict[str, str]:
    """The values of the Prefect Secret blocks the ``secrets`` parameter names (``NAME`` or
    ``NAME=BLOCK``), as {secret name: value}; a missing block is a one-line error."""
    from prefect.blocks.system import Secret

    values: dict[str, str] = {}
    for name, block in parse_block_specs(specs).items():
        try:
            secret = load_block(Secret, block)
        except ConfigurationError as e:
            raise ConfigurationError(
                f"secrets parameter, secrets.{name}: {e} (a Secret block: UI Blocks > Secret, "
                f"or Secret(value=...).save({block!r})); or name another with '{name}=BLOCK'"
            ) from e
        value = secret.get()
        values[name] = value if isinstance(value, str) else json.dumps(value)
    return values


def execute_template(
    template: str, parameters: dict[str, Any], dry_run: bool, environment: str | None,
    services: Services, secrets: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Load ``template`` from the template directories and run it, each step a task run;
    ``secrets`` (values) join the ones the services carry (the CLI's ``--secret``)."""
    catalog = TemplateCatalog(services.settings.paths.templates_path)
    loaded = catalog.load(template)
    run = TemplateRun(
        loaded,
        parameters,
        dry_run=dry_run,
        # the caller names it: a claim (envforge.actions.ownership), not the environment's own
        # run, so its steps write only into a namespace they create
        environment={"name": environment, CLAIMED_ENVIRONMENT: True} if environment else {},
        run_id=str(flow_run.id or "local"),
        services=services,
        secrets={**services.run_secrets, **(secrets or {})},
    )
    logger = get_run_logger()
    logger.info("template %s: %d step(s)%s", loaded.name, len(loaded.spec.steps),
                " (dry run)" if dry_run else "")
    try:
        return run_steps_as_tasks(run)
    finally:
        run.close()


@flow(name="run-template", persist_result=False, log_prints=False)
def run_template(
    template: str,
    parameters: dict[str, Any] | None = None,
    dry_run: bool = False,
    environment: str | None = None,
    secrets: list[str] | None = None,
) -> dict[str, Any]:
    """Run a template by name (from the template directories) or by path.

    Args:
        template: template name, or path to a template directory.
        parameters: values for the template's parameters (checked against its schema).
        dry_run: render everything and change nothing.
        environment: name of the environment this run belongs to, if any.
        secrets: Prefect Secret blocks for ``${{ secrets.NAME }}``: ``NAME`` reads the block
            named like it (lowercase, dashed), ``NAME=BLOCK`` the block BLOCK. Block names
            only: a value never is a parameter.
    """
    services = flow_services()
    values = load_secret_blocks(secrets or [])
    return execute_template(template, parameters or {}, dry_run, environment, services,
                            secrets=values)


def _scaffold(**parameters: Any) -> dict[str, Any]:
    """Run the template named by the deployment (ENVFORGE_TEMPLATE) with the form's values."""
    services = flow_services()
    template = services.settings.runner.template
    if not template:
        raise ConfigurationError(
            "ENVFORGE_TEMPLATE is not set: run this flow through a deployment registered by "
            "'envforge deploy', or use the run-template flow"
        )
    return execute_template(template, parameters, dry_run=False, environment=None,
                            services=services)


# Prefect binds a run's parameters to the flow function's signature, so the scaffold flow takes
# its signature from the template its deployment names: one keyword argument per form field.
_SCAFFOLD_TEMPLATE = load_envforge_settings().runner.template
if _SCAFFOLD_TEMPLATE:
    _scaffold.__signature__ = template_signature(  # type: ignore[attr-defined]
        TemplateCatalog(load_settings().templates_path).load(_SCAFFOLD_TEMPLATE)
    )
scaffold = flow(name="scaffold", persist_result=False, log_prints=False)(_scaffold)
