"""Running a template for an environment, through the runner.

A template made for ``envforge run`` publishes with ``publish:git`` to ``services/<name>``. For
an environment, that step is replaced: the run keeps every other step and ends with a
``publish:gitops`` step (unless the template has its own), which finds the manifests the
template rendered and commits the environment. The template files are not changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envforge.errors import TemplateError
from envforge.run.runner import TemplateRun
from envforge.templating.model import Template, TemplateStep

GITOPS_STEP_ID = "environment"
#: Actions whose job publish:gitops does for an environment.
REPLACED_ACTIONS = {"publish:git"}


def environment_template(template: Template) -> Template:
    """``template`` with its publish:git steps replaced by one publish:gitops step."""
    steps = list(template.spec.steps)
    if any(step.action == "publish:gitops" for step in steps):
        return template
    kept = [step for step in steps if step.action not in REPLACED_ACTIONS]
    used = {step.id for step in kept}
    step_id = GITOPS_STEP_ID if GITOPS_STEP_ID not in used else f"{GITOPS_STEP_ID}-gitops"
    kept.append(TemplateStep.model_validate({
        "id": step_id, "name": "Publish the environment to the GitOps repository",
        "action": "publish:gitops", "input": {"parameters": "${{ parameters }}"}}))
    # The template's own output links name the steps replaced here; the environment's URL
    # is the output that matters.
    output = type(template.spec.output).model_validate(
        {"links": [{"title": "Open the environment",
                    "url": f"${{{{ steps['{step_id}'].output.url }}}}"}]})
    spec = template.spec.model_copy(update={"steps": kept, "output": output})
    return template.model_copy(update={"spec": spec})


def run_for_environment(template: Template, parameters: dict[str, Any],
                        environment: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``template`` inline for an environment; returns the publish:gitops output."""
    derived = environment_template(template)
    run = TemplateRun(derived, parameters, environment=environment)
    try:
        run.run()
    finally:
        run.close()
    for step in derived.spec.steps:
        if step.action == "publish:gitops" and step.id in run.outputs:
            return run.outputs[step.id]
    raise TemplateError(f"template {template.name!r}: its publish:gitops step did not run "
                        "(check its 'if')")
