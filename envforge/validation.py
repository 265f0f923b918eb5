"""`envforge templates validate`: everything about a template that can be checked without
running it — shape, parameter schema, expressions, step references, action ids and inputs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from envforge.actions.base import fake_output
from envforge.actions.registry import ActionRegistry, default_registry
from envforge.errors import EnvforgeError, TemplateFormatError
from envforge.runner import SecretRef
from envforge.templating.expressions import EXPRESSION, ExpressionEngine
from envforge.templating.loader import load_template
from envforge.templating.model import Template
from envforge.templating.parameters import example_values, schema_problems

# steps.<id> or steps['<id>']; steps.get('<id>') is a lookup that tolerates a skipped step.
_STEP_REFERENCE = re.compile(
    r"steps\s*(?:\.\s*([A-Za-z_]\w*)\b(?!\s*\()|\[\s*['\"]([^'\"]+)['\"]\s*\])")


@dataclass(frozen=True)
class ValidationReport:
    path: Path
    template: str | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_template_dir(path: Path, registry: ActionRegistry | None = None) -> ValidationReport:
    try:
        template = load_template(path)
    except TemplateFormatError as e:
        return ValidationReport(path, None, [str(e)])
    return ValidationReport(path, template.name, validate_template(template, registry))


def validate_template(template: Template, registry: ActionRegistry | None = None) -> list[str]:
    registry = registry or default_registry()
    problems = list(schema_problems(template))
    if template.directory.name != template.name:
        problems.append(
            f"metadata.name {template.name!r} differs from the directory name "
            f"{template.directory.name!r}; templates are found by directory name"
        )
    engine = ExpressionEngine()
    context: dict[str, Any] = {
        "parameters": example_values(template),
        "steps": {},
        "environment": {"name": "example", "type": "preview"},
        "secrets": _AnySecret(),
    }
    seen: list[str] = []
    for step in template.spec.steps:
        where = f"step {step.id!r}"
        problems += _syntax_and_references(engine, step.input, f"{where} field input", seen)
        problems += _syntax_and_references(engine, step.if_, f"{where} field if", seen)
        seen.append(step.id)
        if step.action not in registry:
            problems.append(f"{where}: unknown action {step.action!r}; available actions: "
                            f"{', '.join(registry.ids())}")
            context["steps"][step.id] = {"output": {}}
            continue
        action = registry.get(step.action)
        context["steps"][step.id] = {
            "output": fake_output(action.output_model, action.id).model_dump(mode="json")
        }
        try:
            rendered = engine.render_value(step.input, context, f"{where} field input")
            params = action.input_model.model_validate(rendered)
        except ValidationError as e:
            for err in e.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "(input)"
                problems.append(f"{where} ({action.id}): input.{loc}: {err['msg']}")
            continue
        except EnvforgeError as e:
            problems.append(str(e))
            continue
        checks = action.check(params, template.directory)
        problems += [f"{where} ({action.id}): {p}" for p in checks]
    output = template.spec.output.model_dump(exclude_none=True)
    problems += _syntax_and_references(engine, output, "output", seen)
    return problems


def _syntax_and_references(
    engine: ExpressionEngine, value: Any, where: str, earlier_steps: list[str]
) -> list[str]:
    problems = engine.check_syntax(value, where)
    for text in _strings(value):
        for expr in EXPRESSION.findall(text):
            for match in _STEP_REFERENCE.finditer(expr):
                ref = match.group(1) or match.group(2)
                if ref not in earlier_steps:
                    problems.append(
                        f"{where}: refers to steps.{ref}, which is not an earlier step "
                        f"(earlier steps: {', '.join(earlier_steps) or 'none'})"
                    )
    return problems


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


class _AnySecret(dict[str, SecretRef]):
    """In validation any secret name resolves, since names come with the run."""

    def __missing__(self, key: str) -> SecretRef:
        return SecretRef(key)

    def __getattr__(self, key: str) -> SecretRef:
        return SecretRef(key)
