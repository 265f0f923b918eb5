"""The run form of a per-template environment deployment: the environment's own fields, then
the template's form pages, and back from a submitted form to an environment request.

The generic ``create-environment`` flow takes ``template`` and ``parameters`` (a raw object);
a Prefect run form cannot show a template's pages that way. So ``envforge deploy`` gives every
template a ``create-environment/<template>`` deployment whose ``parameter_openapi_schema`` is
:func:`environment_form_schema`: name, type, TTL, owner and source first, then the template's
fields with their titles, descriptions, enums and defaults (:func:`form_schema`). Optional
fields are plain typed properties without a default of null, so the UI shows no "type None".

Credentials: Prefect keeps a flow run's parameters as plain JSON in its database and shows
them on the run page, whatever the schema says (``format: password`` only masks the input box;
a ``SecretStr`` parameter is stored as the typed text). So a template field marked as a
credential (:mod:`envforge.core.sensitive`) becomes a *Vault reference* field
(``vault:kv/app/db#password``): the run's parameters name where the value lives, and
:func:`resolve_credential_references` reads the values at run time through the named Vault
connection (``vault_block``), registering each with the log redactor.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envforge.capabilities.vault_scope import VaultScope
from envforge.connections import ConnectionSource
from envforge.core.sensitive import credential_paths, is_credential_name
from envforge.errors import ParameterError, SecretReferenceError, TemplateError
from envforge.secrets.references import FORM as REFERENCE_FORM
from envforge.secrets.references import SecretReference, parse_reference
from envforge.templating.model import Template
from envforge.templating.parameters import form_schema, pages

ENVIRONMENT_TYPES = ("preview", "development", "staging")
#: A reference's shape, for the browser's own check before submit (parse_reference is the
#: authoritative one at run time).
REFERENCE_PATTERN = r"^vault:[A-Za-z0-9_][A-Za-z0-9_.-]*/.+#[A-Za-z0-9_.-]+(@[0-9]+)?$"
SOURCE_SCHEMA: dict[str, Any] = {
    "title": "Source",
    "description": "Where the environment's code comes from (all optional).",
    "type": "object",
    "properties": {
        "repository": {"title": "Repository", "type": "string", "position": 0,
                       "description": "Git URL of the application."},
        "branch": {"title": "Branch", "type": "string", "position": 1,
                   "description": "Branch under review."},
        "pullRequest": {"title": "Pull request", "type": "integer", "minimum": 1,
                        "position": 2, "description": "Pull request number."},
        "commit": {"title": "Commit", "type": "string", "position": 3,
                   "description": "Commit to deploy."},
    },
}


def _environment_fields() -> dict[str, dict[str, Any]]:
    """The environment's own fields, in form order (a fresh copy each time)."""
    return {
        "name": {"title": "Environment name", "type": "string", "maxLength": 63,
                 "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                 "description": "A DNS label, e.g. pr-42 or alice-demo; also the namespace."},
        "environment_type": {"title": "Environment type", "type": "string",
                             "enum": list(ENVIRONMENT_TYPES), "default": "preview",
                             "description": "What it is for; recorded with it, and what "
                                            "sleep policies go by."},
        "ttl": {"title": "Time to live", "type": "string",
                "pattern": r"^([0-9]+[smhdwSMHDW])+$",
                "description": "e.g. 48h, 3d or 1d12h; empty: the default (ENVFORGE_DEFAULT_TTL, "
                               "48h unless set)."},
        "owner": {"title": "Owner", "type": "string",
                  "description": "Who answers for it, e.g. group:team-a (default: you)."},
        "source": copy.deepcopy(SOURCE_SCHEMA),
    }


VAULT_BLOCK_FIELD: dict[str, Any] = {
    "title": "Vault connection", "type": "string",
    "description": "VaultConnection block the credential references are read through "
                   "(empty: VAULT_ADDR and VAULT_TOKEN of the worker).",
}
ENVIRONMENT_FIELDS = (*_environment_fields(), "vault_block")


@dataclass(frozen=True)
class FormSubmission:
    """A submitted environment form, split into the request's parts."""

    name: str
    environment_type: str
    ttl: str | None
    owner: str | None
    source: dict[str, Any] | None
    parameters: dict[str, Any]
    #: template field -> reference text (the values are resolved at run time)
    credential_references: dict[str, str] = field(default_factory=dict)
    vault_block: str | None = None
    #: the template the form is for (which Vault paths its credentials may come from)
    template: str = ""


def credential_fields(template: Template) -> list[str]:
    """Top-level template fields that hold credentials (by schema hint or by name). Only text
    can be one: a switch called ``vaultSecrets`` or a choice from an enum is not."""
    marked = credential_paths(pages(template))
    return [name for name, prop in form_schema(template)["properties"].items()
            if (name in marked or is_credential_name(name))
            and prop.get("type", "string") == "string" and "enum" not in prop]


def environment_form_schema(template: Template) -> dict[str, Any]:
    """The run form: environment fields, then the template's pages (``position`` in order).

    A template field called ``name`` or ``owner`` is the environment's own field of that name
    (lifecycle passes the environment name and owner to it), so it appears once, first, with
    the template's title and default where it has them.
    """
    template_form = form_schema(template)
    template_props: dict[str, Any] = dict(template_form["properties"])
    env_fields = _environment_fields()
    clashes = sorted(set(template_props) & ({"environment_type", "ttl", "source",
                                             "vault_block"}))
    if clashes:
        raise TemplateError(
            f"template {template.name!r}: parameter(s) {', '.join(clashes)} clash with the "
            "environment form's own fields; rename them in its template.yaml")
    for shared in ("name", "owner"):
        if shared in template_props:
            own = {k: v for k, v in template_props.pop(shared).items() if k != "position"}
            merged = {**env_fields[shared], **{k: v for k, v in own.items()
                                               if k in ("default", "enum", "examples")}}
            merged["description"] = (f"{env_fields[shared]['description']} Also the "
                                     f"template's {own.get('title') or shared!r} field.")
            env_fields[shared] = merged
    properties: dict[str, Any] = {}
    for name, prop in env_fields.items():
        properties[name] = {**prop, "position": len(properties)}
    secret = set(credential_fields(template))
    for name, prop in template_props.items():
        shown = _reference_field(prop) if name in secret else dict(prop)
        properties[name] = {**shown, "position": len(properties)}
    if secret:
        properties["vault_block"] = {**VAULT_BLOCK_FIELD, "position": len(properties)}
    required = ["name", *[r for r in template_form["required"] if r != "name"]]
    schema: dict[str, Any] = {
        "title": f"New environment from {template.metadata.title or template.name}",
        "type": "object",
        "properties": properties,
        "required": required,
    }
    if template.metadata.description:
        schema["description"] = template.metadata.description
    if "allOf" in template_form:
        schema["allOf"] = template_form["allOf"]
    return schema


def _reference_field(prop: Mapping[str, Any]) -> dict[str, Any]:
    """A credential field as the form shows it: where the value lives, never the value."""
    title = prop.get("title") or "Credential"
    return {
        "title": f"{title} (Vault reference)",
        "type": "string",
        "pattern": REFERENCE_PATTERN,
        "description": (f"{prop.get('description') or ''} Give where the value lives in "
                        f"Vault, {REFERENCE_FORM}: run parameters are stored in plain text, "
                        "so the value itself is never one.").strip(),
    }


def environment_signature(template: Template) -> inspect.Signature:
    """Keyword-only arguments, one per form field (Prefect binds a run's parameters to the
    flow function's signature, so the form flow wears this one)."""
    params = []
    for name, prop in environment_form_schema(template)["properties"].items():
        if not name.isidentifier():
            raise TemplateError(
                f"template {template.name!r}: parameter {name!r} is not a valid identifier, "
                "which Prefect deployments need; rename it (e.g. camelCase)")
        default = inspect.Parameter.empty if name == "name" else prop.get("default")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                        default=copy.deepcopy(default), annotation=Any))
    return inspect.Signature(params)


def submission_from_form(template: Template, fields: Mapping[str, Any]) -> FormSubmission:
    """Split a submitted form into the environment's fields and the template's parameters;
    ``None`` (an empty optional field) is left out so the template's defaults apply."""
    given = {k: v for k, v in fields.items() if v is not None}
    template_props = form_schema(template)["properties"]
    name = given.get("name")
    if not isinstance(name, str) or not name:
        raise ParameterError(template.name, [("$.name", "the environment needs a name")])
    parameters = {k: v for k, v in given.items() if k not in ENVIRONMENT_FIELDS}
    for shared in ("name", "owner"):
        if shared in template_props and shared in given:
            parameters[shared] = given[shared]
    references = {k: str(parameters.pop(k)) for k in credential_fields(template)
                  if k in parameters}
    source = {k: v for k, v in dict(given.get("source") or {}).items() if v not in (None, "")}
    return FormSubmission(
        name=name,
        environment_type=str(given.get("environment_type") or "preview"),
        ttl=given.get("ttl") or None,
        owner=given.get("owner") or None,
        source=source or None,
        template=template.name,
        parameters=parameters,
        credential_references=references,
        vault_block=given.get("vault_block") or None,
    )


def resolve_credential_references(submission: FormSubmission, connections: ConnectionSource,
                                  scope: VaultScope | None = None) -> dict[str, Any]:
    """The template parameters with each credential field's value read from Vault through
    ``connections`` (the reader registers every value with the redactor, so none reaches a
    log), each only from a path the template may read (``scope``; default: its own folder)."""
    if not submission.credential_references:
        return dict(submission.parameters)
    parsed = {name: _parse_without_echo(name, text)
              for name, text in submission.credential_references.items()}
    for name, ref in parsed.items():  # checked before Vault is asked anything
        (scope or VaultScope()).check(f"{ref.mount}/{ref.path}", submission.template,
                                      f"form field {name!r}", SecretReferenceError)
    reader = connections.vault_reader(submission.vault_block)
    try:
        values = {name: reader.read(ref) for name, ref in parsed.items()}
    finally:
        reader.forget()
    return {**submission.parameters, **values}


def _parse_without_echo(name: str, text: str) -> SecretReference:
    """parse_reference, whose error would quote the text: here that text may be the very
    credential someone typed in, so the error names the field and the expected form only."""
    try:
        return parse_reference(text, where=f"form field {name!r}")
    except SecretReferenceError:
        raise SecretReferenceError(
            f"form field {name!r} is not a Vault reference (what was given is not shown: it "
            f"may be the credential itself); give {REFERENCE_FORM}") from None
