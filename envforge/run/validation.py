"""`envforge templates validate`: everything about a template that can be checked without
running it — shape, parameter schema, expressions, step references, action ids and inputs —
plus two render-only dry runs (every field filled; only required fields) that report, as
warnings, each name a run would render empty because it is undefined (errors with --strict).
Runs render undefined names empty, as Backstage's nunjucks does; strictness lives here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from envforge.actions.base import fake_output, why_missing
from envforge.actions.registry import ActionRegistry, default_registry
from envforge.errors import EnvforgeError, StepFailedError, TemplateFormatError
from envforge.run.runner import PlaceholderOutput, SecretRef, TemplateRun
from envforge.templating.expressions import EXPRESSION, ExpressionEngine
from envforge.templating.loader import load_template
from envforge.templating.model import Template
from envforge.templating.parameters import apply_defaults, pages, schema_problems, strip_ui
from envforge.templating.samples import Mode, sample_values
from envforge.templating.sandbox import UNDEFINED_USES

_SECRET_NAME = re.compile(r"secrets\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")

# steps.<id> or steps['<id>']; steps.get('<id>') is a lookup that tolerates a skipped step.
_STEP_REFERENCE = re.compile(
    r"steps\s*(?:\.\s*([A-Za-z_]\w*)\b(?!\s*\()|\[\s*['\"]([^'\"]+)['\"]\s*\])")


@dataclass(frozen=True)
class ValidationReport:
    path: Path
    template: str | None
    problems: list[str]
    warnings: list[str] = field(default_factory=list)
    #: the first problem of each render-only dry run, by value set ("all", "required")
    dry_runs: dict[str, str | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def passes(self, strict: bool = False) -> bool:
        return self.ok and not (strict and self.warnings)


def validate_template_dir(path: Path, registry: ActionRegistry | None = None) -> ValidationReport:
    try:
        template = load_template(path)
    except TemplateFormatError as e:
        return ValidationReport(path, None, [str(e)])
    registry = registry or default_registry()
    problems = validate_template(template, registry)
    warnings: list[str] = []
    dry_runs: dict[str, str | None] = {}
    for mode in ("all", "required"):
        failure, undefined = dry_run_template(template, mode, registry)
        dry_runs[mode] = failure
        if failure and not any(failure in p for p in problems):
            problems.append(f"dry run with {_MODE_TEXT[mode]}: {failure}")
        warnings += [w for w in undefined if w not in warnings]
    return ValidationReport(path, template.name, problems, warnings, dry_runs)


_MODE_TEXT = {"all": "every field filled", "required": "only required fields"}


def dry_run_template(template: Template, mode: Mode,
                     registry: ActionRegistry | None = None) -> tuple[str | None, list[str]]:
    """A render-only dry run with sample values: (first problem or None, undefined uses)."""
    values = sample_values(template, mode)
    for page in pages(template):
        values = apply_defaults(strip_ui(page), values)
    uses: list[tuple[str, str]] = []
    token = UNDEFINED_USES.set(uses)
    failure: str | None = None
    run: TemplateRun | None = None
    try:
        run = TemplateRun(template, values, dry_run=True, registry=registry or default_registry(),
                          validate=False, render_only=True,
                          environment={"name": "example", "type": "preview"},
                          secret_names=_secret_names(template))
        run.run()
    except StepFailedError as e:
        failure = e.reason if e.reason.startswith(f"step {e.step_id!r}") else (
            f"step {e.step_id!r} ({e.action_id}): {e.reason}")
    except EnvforgeError as e:
        failure = str(e)
    finally:
        UNDEFINED_USES.reset(token)
        if run is not None:
            run.close()
    warnings = []
    for where, name in dict.fromkeys(uses):
        warnings.append(f"{where or 'output'}: {name!r} is undefined with "
                        f"{_MODE_TEXT[mode]}; a run renders it empty (give it a default, or "
                        "guard it with 'is defined' / '| default')")
    return failure, warnings


def _secret_names(template: Template) -> list[str]:
    text = template.model_dump_json(by_alias=True)
    return sorted({m.group(1) or m.group(2) for m in _SECRET_NAME.finditer(text)})


def validate_template(template: Template, registry: ActionRegistry | None = None) -> list[str]:
    registry = registry or default_registry()
    problems = list(schema_problems(template))
    engine = ExpressionEngine()
    context: dict[str, Any] = {
        "parameters": sample_values(template, "all"),
        "steps": {},
        "environment": {"name": "example", "type": "preview"},
        "secrets": _AnySecret(),
        "user": {"ref": "user:default/example", "entity": {"metadata": {"name": "example"}}},
    }
    seen: list[str] = []
    for step in template.spec.steps:
        where = f"step {step.id!r}"
        problems += _syntax_and_references(engine, step.input, f"{where} field input", seen)
        problems += _syntax_and_references(engine, step.if_, f"{where} field if", seen)
        seen.append(step.id)
        if step.action not in registry:
            problems.append(f"{where}: unknown action {step.action!r} (envforge does not have "
                            "it; 'envforge actions list' shows the available ones)"
                            + why_missing(step.action))
            context["steps"][step.id] = {"output": PlaceholderOutput(step.action)}
            continue
        if step.each is not None:
            context["each"] = {"key": 0, "value": engine.render_value(
                step.each, context, f"{where} field each")}
            if isinstance(context["each"]["value"], list):
                context["each"]["value"] = (context["each"]["value"] or [None])[0]
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
