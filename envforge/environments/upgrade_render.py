"""Rendering an upgrade: the environment's template as it is now, run render-only with the
recorded parameters, into the environment's new record and manifests (envforge.environments.
upgrade decides, diffs and commits). An image step whose build inputs ``--set`` changed is
built for real here (envforge.environments.upgrade_rebuild); everything else that changes
things is faked, its outputs carried forward later."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envforge.core.sensitive import credential_paths
from envforge.environments.upgrade_outputs import changed_inputs
from envforge.environments.upgrade_rebuild import Rebuild, RebuiltStep, undo_rebuilds
from envforge.errors import EnvforgeError, ParameterError
from envforge.gitops.actions import find_manifests
from envforge.gitops.record import EnvironmentRecord, public_parameters
from envforge.gitops.runs import environment_template
from envforge.gitops.versions import template_version
from envforge.run.runner import TemplateRun
from envforge.secrets.redaction import mask_credential_values
from envforge.services import Services
from envforge.templating.loader import TemplateCatalog
from envforge.templating.model import Template
from envforge.templating.parameters import pages, validate_parameters


def missing_required(template: Template, values: Mapping[str, Any]) -> list[str]:
    """Parameters a page requires that ``values`` lacks and that have no default."""
    missing = []
    for page in pages(template):
        properties = page.get("properties") or {}
        for key in page.get("required") or []:
            if key not in values and "default" not in (properties.get(key) or {}):
                missing.append(key)
    return list(dict.fromkeys(missing))


@dataclass
class RenderedUpgrade:
    """The environment's new record (not yet stamped) and its template's rendered manifests."""

    record: EnvironmentRecord
    manifests: Path
    defaults: list[str]
    close: Callable[[], None]
    #: skipped steps (their outputs faked) whose input the upgrade changes: step id ->
    #: (action, the input fields that differ)
    input_changes: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    #: a skipped step writes files of its own (its output lists ``files``): keep them
    writers_skipped: bool = False
    #: image steps built again (their build inputs changed), or that would be in a dry run
    rebuilt: list[RebuiltStep] = field(default_factory=list)


def _skipped_inputs(run: TemplateRun) -> dict[str, tuple[str, dict[str, Any]]]:
    """step id -> (action, rendered input) of every step the render-only run faked."""
    inputs: dict[str, tuple[str, dict[str, Any]]] = {}
    for step in run.template.spec.steps:
        prepared = run.prepare(step) if step.id in run.outputs else None
        if prepared is not None and prepared.fake:
            inputs[step.id] = (prepared.action.id, prepared.params.model_dump(mode="json"))
    return inputs


def _writes_files(run: TemplateRun) -> bool:
    return any(prepared is not None and prepared.fake
               and "files" in prepared.action.output_model.model_fields
               for step in run.template.spec.steps if step.id in run.outputs
               for prepared in [run.prepare(step)])


def render_upgrade(record: EnvironmentRecord, catalog: TemplateCatalog,
                   overrides: Mapping[str, Any] | None = None, build: bool = False,
                   services: Services | None = None,
                   run_id: str | None = None) -> RenderedUpgrade:
    """Run the environment's current template render-only and build its new record; raises
    (TemplateNotFoundError, TemplateError, ParameterError, ...) before anything is written.

    An image step whose inputs ``overrides`` change is built again when ``build`` (else its
    outputs say it would be); nothing else runs."""
    template = catalog.load(record.spec.template)
    given = {**record.spec.parameters, **(overrides or {})}
    missing = missing_required(template, given)
    if missing:
        raise ParameterError(template.name, [
            (f"$.{key}", f"required by the current template and not recorded for environment "
                         f"{record.name!r}; give it: envforge env upgrade {record.name} --set "
                         f"{key}=...") for key in missing])
    values = validate_parameters(template, given)
    defaults = sorted(k for k in values if k not in given)
    mask_credential_values(values, credential_paths(pages(template)))  # never in logs or Git
    derived = environment_template(template)
    environment = {
        "name": record.name, "type": record.spec.type, "mode": "update",
        "namespace": record.status.namespace, "host": record.status.host,
        "owner": record.spec.owner, "source": record.spec.source.model_dump(exclude_none=True),
        "isolation": record.spec.isolation.model_dump(),
    }
    # --set may change what a skipped step would be given: the inputs as recorded, to compare
    before = (_recorded_inputs(derived, template, record, environment, overrides, services)
              if overrides else None)
    rebuild = Rebuild(before, build)
    # run_id: the recorded change's run, so its image step writes that change's ledger
    run = TemplateRun(derived, values, dry_run=True, render_only=True, environment=environment,
                      validate=False, services=services, run_id=run_id or uuid.uuid4().hex[:12])
    try:
        run.run(execute_step=rebuild.execute)
        input_changes: dict[str, tuple[str, list[str]]] = {}
        if before is not None:
            again = {r.step_id for r in rebuild.steps}
            now = _skipped_inputs(run)
            input_changes = {sid: (action, changed) for sid, (action, given_now) in now.items()
                             if sid not in again and action != "publish:gitops"  # it is
                             # the upgrade's own commit, which takes the new parameters
                             and (changed := changed_inputs(before.get(sid, ("", {}))[1],
                                                            given_now))}
        writers_skipped = _writes_files(run)
        step = next(s for s in derived.spec.steps if s.action == "publish:gitops")
        prepared = run.prepare(step)
        if prepared is None:
            raise EnvforgeError(f"environment {record.name!r}: template {template.name!r} "
                                f"skips its publish:gitops step ({step.id!r}, 'if' is false); "
                                "nothing to upgrade to")
        params: Any = prepared.params
        manifests = find_manifests(run.action_context(step.id), params.manifestsPath)
        recorded, _ = public_parameters(params.parameters, credential_paths(pages(template)))
    except BaseException:
        undo_rebuilds(rebuild.steps)  # a failed render leaves no image of its own behind
        run.close()
        raise
    spec = record.spec.model_copy(update={"parameters": recorded})
    status = record.status.model_copy(update={"templateVersion": template_version(template)})
    upgraded = record.model_copy(update={"spec": spec, "status": status})
    return RenderedUpgrade(upgraded, manifests, defaults, run.close, input_changes,
                           writers_skipped, rebuild.steps)


def _recorded_inputs(derived: Template, template: Template, record: EnvironmentRecord,
                     environment: Mapping[str, Any], overrides: Mapping[str, Any] | None,
                     services: Services | None = None
                     ) -> dict[str, tuple[str, dict[str, Any]]]:
    """The skipped steps' inputs as the recorded parameters render them: ``overrides`` count
    only for parameters the record lacks (new ones the template requires), so what differs
    from the upgrade's inputs is what ``--set`` changed."""
    recorded = dict(record.spec.parameters)
    values = validate_parameters(template, {
        **{k: v for k, v in (overrides or {}).items() if k not in recorded}, **recorded})
    mask_credential_values(values, credential_paths(pages(template)))
    run = TemplateRun(derived, values, dry_run=True, render_only=True, environment=environment,
                      validate=False, services=services)
    try:
        run.run()
        return _skipped_inputs(run)
    finally:
        run.close()
