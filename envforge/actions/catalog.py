"""catalog:write and catalog:register, with Backstage's inputs and outputs.

catalog:write puts an entity file (``filePath``, default ``catalog-info.yaml``) in the
workspace, published with the rest of it. catalog:register registers a catalog-info URL with
a Backstage catalog's REST API (``POST /api/catalog/locations``) at ENVFORGE_BACKSTAGE_URL,
with ENVFORGE_BACKSTAGE_TOKEN as its bearer token, through the egress capability (the token
bound to that origin, never sent on a redirect); without that setting a real run refuses
with a one-line message (a dry run fakes its outputs). catalog:write writes through the
workspace file API: a bad ``filePath`` is one line naming it, never an OSError with a path.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ConfigDict, Field, model_validator

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.capabilities import AllowRule, Credential, token_id
from envforge.errors import ActionError, CapabilityError, ConfigurationError
from envforge.settings import load_settings


class CatalogWriteInput(ActionInput):
    entity: dict[str, Any] = Field(description="The catalog entity (apiVersion, kind, ...).")
    filePath: str = Field("catalog-info.yaml", description="Workspace-relative file to write.")


class CatalogWriteOutput(ActionOutput):
    filePath: str


class CatalogWrite(Action[CatalogWriteInput, CatalogWriteOutput]):
    id = "catalog:write"
    git_bound = True
    description = "Write a Backstage catalog entity (catalog-info.yaml) into the workspace."
    input_model = CatalogWriteInput
    output_model = CatalogWriteOutput
    supports_dry_run = True
    examples = [{"id": "catalog", "action": "catalog:write", "input": {"entity": {
        "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
        "metadata": {"name": "${{ parameters.name }}"},
        "spec": {"type": "service", "lifecycle": "experimental", "owner": "team-a"}}}}]

    def run(self, ctx: ActionContext, params: CatalogWriteInput) -> CatalogWriteOutput:
        text = yaml.safe_dump(params.entity, sort_keys=False)
        try:
            ctx.files.write_text(params.filePath, text)
        except CapabilityError as e:
            raise ActionError(f"step {ctx.step_id!r} (catalog:write): {e}") from None
        return CatalogWriteOutput(filePath=params.filePath)

    def rollback(self, ctx: ActionContext, params: CatalogWriteInput,
                 output: CatalogWriteOutput) -> None:
        ctx.files.remove(output.filePath)


class CatalogRegisterInput(ActionInput):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    catalogInfoUrl: str | None = Field(None, description="URL of the catalog-info file.")
    repoContentsUrl: str | None = Field(None, description="Repository contents URL (from a "
                                        "publish step); catalogInfoPath is appended.")
    catalogInfoPath: str = "/catalog-info.yaml"
    optional: bool = Field(False, description="A failed registration does not fail the step.")

    @model_validator(mode="after")
    def _one_url(self) -> CatalogRegisterInput:
        if not self.catalogInfoUrl and not self.repoContentsUrl:
            raise ValueError("give catalogInfoUrl, or repoContentsUrl (and catalogInfoPath)")
        return self

    @property
    def url(self) -> str:
        if self.catalogInfoUrl:
            return self.catalogInfoUrl
        return f"{(self.repoContentsUrl or '').rstrip('/')}/{self.catalogInfoPath.lstrip('/')}"


class CatalogRegisterOutput(ActionOutput):
    entityRef: str | None = None
    catalogInfoUrl: str


class CatalogRegister(Action[CatalogRegisterInput, CatalogRegisterOutput]):
    id = "catalog:register"
    description = "Register a catalog-info file with a Backstage catalog (ENVFORGE_BACKSTAGE_URL)."
    input_model = CatalogRegisterInput
    output_model = CatalogRegisterOutput
    examples = [{"id": "register", "action": "catalog:register", "input": {
        "repoContentsUrl": "${{ steps.publish.output.repoContentsUrl }}",
        "catalogInfoPath": "/catalog-info.yaml"}}]

    def run(self, ctx: ActionContext, params: CatalogRegisterInput) -> CatalogRegisterOutput:
        step = f"step {ctx.step_id!r} (catalog:register)"
        # the settings the run was handed (the process's for a bare library call)
        providers = (ctx.services.settings if ctx.services else load_settings()).providers
        base = (providers.backstage_url or "").rstrip("/")
        if not base:
            raise ConfigurationError(f"{step}: set ENVFORGE_BACKSTAGE_URL (and "
                                     "ENVFORGE_BACKSTAGE_TOKEN) to the Backstage to register in")
        secret = providers.backstage_token
        token = secret.get_secret_value() if secret else ""
        try:
            # the operator configured this origin: allowed (privately too), token bound to it
            rule = AllowRule.parse(base, private=True)
            credentials = [Credential.bearer(rule.origin, token, token_id(token))] if token else []
            policy = ctx.capabilities.egress.with_rules(rule)
            with policy.client(credentials) as client:
                response = client.request("POST", f"{base}/api/catalog/locations",
                                          json={"type": "url", "target": params.url})
        except CapabilityError as e:
            reason = str(e).replace(token, "***") if token else str(e)
            if params.optional:
                ctx.logger.warning("%s: Backstage did not answer (%s); optional, skipped",
                                   step, reason)
                return CatalogRegisterOutput(catalogInfoUrl=params.url)
            raise ActionError(f"{step}: Backstage at {base}: {reason}") from None
        if response.status >= 400:
            if params.optional:
                ctx.logger.warning("%s: Backstage answered %s; optional, skipped", step,
                                   response.status)
                return CatalogRegisterOutput(catalogInfoUrl=params.url)
            detail = response.text(200)
            detail = detail.replace(token, "***") if token else detail
            raise ActionError(f"{step}: Backstage answered {response.status}: {detail}")
        entities = (response.json() or {}).get("entities") or []
        ref = None
        if entities:
            meta = entities[0].get("metadata", {})
            ref = (f"{str(entities[0].get('kind', 'component')).lower()}:"
                   f"{meta.get('namespace', 'default')}/{meta.get('name')}")
        return CatalogRegisterOutput(entityRef=ref, catalogInfoUrl=params.url)


ACTIONS: list[type[Action[Any, Any]]] = [CatalogWrite, CatalogRegister]
