"""Registering Prefect deployments whose run form is a template's own parameter schema.

`prefect deploy` derives a deployment's form from the flow function's signature, which cannot
express a template's JSON Schema (pages, enums, titles, ui hints). So every template gets a
deployment of the generic ``scaffold`` flow, created through the Prefect API with
``parameter_openapi_schema`` set to the template's form schema and ``enforce_parameter_schema``
on: the Prefect UI shows the same form Backstage would, and the server rejects a run whose
parameters break the schema before anything starts.

Every template also gets a ``create-environment/<template>`` deployment: the same form behind
the environment's own fields (envforge.environments.forms), run by the ``create-environment``
flow's form entry point, so an environment is made from a form rather than raw JSON.
"""

from __future__ import annotations

import inspect
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envforge.core.config import PROJECT_ROOT
from envforge.environments.forms import environment_form_schema, environment_signature
from envforge.errors import TemplateError
from envforge.templating.model import Template
from envforge.templating.parameters import form_schema

SCAFFOLD_FLOW = "scaffold"
SCAFFOLD_ENTRYPOINT = "flows/run_template.py:scaffold"
DEFAULT_WORK_POOL = "envforge-process"
ENVIRONMENT_FLOW = "create-environment"
ENVIRONMENT_ENTRYPOINT = "flows/environments.py:create_environment_from_form"


def flow_run_command(python: str | None = None) -> str:
    """The process worker's command for envforge's flow runs (envforge.launch.flow_start): no
    supervisor process, and an engine forked from the warm runner when one is listening."""
    return f"{shlex.quote(python or sys.executable)} -m envforge.launch.flow_start"


def job_variables(template_ref: str) -> dict[str, Any]:
    """A template deployment's job variables: its template, and the flow-run command."""
    return {"env": {"ENVFORGE_TEMPLATE": template_ref}, "command": flow_run_command()}


@dataclass(frozen=True)
class RegisteredDeployment:
    """A deployment `envforge deploy` created or updated for a template."""
    name: str  # "<flow>/<deployment>", as `prefect deployment run` takes it
    id: str
    template: str


def template_signature(template: Template) -> inspect.Signature:
    """A keyword-only signature with one argument per form field (defaults from the schema).

    Prefect binds a run's parameters to the flow function's signature; the scaffold flow
    wears this one so the form's fields arrive as its arguments.
    """
    params = []
    for name, prop in form_schema(template)["properties"].items():
        if not name.isidentifier():
            raise TemplateError(
                f"template {template.name!r}: parameter {name!r} is not a valid identifier, "
                "which Prefect deployments need; rename it (e.g. camelCase)"
            )
        default = prop.get("default", None)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=Any))
    return inspect.Signature(params)


def deployment_spec(
    template: Template, template_ref: str, work_pool: str, project_dir: Path
) -> dict[str, Any]:
    """The create_deployment arguments for one template (pure, so tests can inspect it)."""
    template_signature(template)  # refuse parameter names a flow cannot take
    return {
        "name": template.name,
        "description": template.metadata.description or template.metadata.title,
        "entrypoint": SCAFFOLD_ENTRYPOINT,
        "path": str(project_dir),
        "work_pool_name": work_pool,
        "parameter_openapi_schema": form_schema(template),
        "enforce_parameter_schema": True,
        "job_variables": job_variables(template_ref),
        "tags": ["envforge", f"template:{template.name}", *template.metadata.tags],
        "pull_steps": [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(project_dir)}}
        ],
    }


def environment_deployment_spec(
    template: Template, template_ref: str, work_pool: str, project_dir: Path
) -> dict[str, Any]:
    """The create_deployment arguments of ``create-environment/<template>`` (pure)."""
    environment_signature(template)  # refuse what a flow cannot take, before the server does
    title = template.metadata.title or template.name
    return {
        "name": template.name,
        "description": f"Create an environment from {title}: the environment's fields, then "
                       "the template's form.",
        "entrypoint": ENVIRONMENT_ENTRYPOINT,
        "path": str(project_dir),
        "work_pool_name": work_pool,
        "parameter_openapi_schema": environment_form_schema(template),
        "enforce_parameter_schema": True,
        "job_variables": job_variables(template_ref),
        "tags": ["envforge", "lifecycle", f"template:{template.name}"],
        "pull_steps": [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(project_dir)}}
        ],
    }


def register_template_deployments(
    templates: Sequence[tuple[Template, str]],
    work_pool: str = DEFAULT_WORK_POOL,
    project_dir: Path = PROJECT_ROOT,
) -> list[RegisteredDeployment]:
    """Create or update, per (template, reference), its ``scaffold/<template>`` and
    ``create-environment/<template>`` deployments on the current Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    registered = []
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(work_pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=work_pool, type="process"))
        flow_id = client.create_flow_from_name(SCAFFOLD_FLOW)
        environment_flow_id = client.create_flow_from_name(ENVIRONMENT_FLOW)
        for template, ref in templates:
            spec = deployment_spec(template, ref, work_pool, project_dir)
            deployment_id = client.create_deployment(flow_id=flow_id, **spec)
            registered.append(
                RegisteredDeployment(f"{SCAFFOLD_FLOW}/{template.name}", str(deployment_id),
                                     template.name)
            )
            spec = environment_deployment_spec(template, ref, work_pool, project_dir)
            deployment_id = client.create_deployment(flow_id=environment_flow_id, **spec)
            registered.append(
                RegisteredDeployment(f"{ENVIRONMENT_FLOW}/{template.name}", str(deployment_id),
                                     template.name)
            )
    return registered
