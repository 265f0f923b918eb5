"""catalog:write and catalog:register, with Backstage's inputs and outputs.

catalog:write puts an entity file (``filePath``, default ``catalog-info.yaml``) in the
workspace, published with the rest of it. catalog:register registers a catalog-info URL with
a Backstage catalog's REST API (``POST /api/catalog/locations``) at ENVFORGE_BACKSTAGE_URL,
with ENVFORGE_BACKSTAGE_TOKEN as its bearer token; without that setting a real run refuses
with a one-line message (a dry run fakes its outputs).
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import yaml
from pydantic import ConfigDict, Field, model_validator

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.errors import ActionError, ConfigurationError
from envforge.paths import resolve_inside


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
        dest = resolve_inside(ctx.workspace, params.filePath, "workspace")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(yaml.safe_dump(params.entity, sort_keys=False), encoding="utf-8")
        return CatalogWriteOutput(filePath=params.filePath)

    def rollback(self, ctx: ActionContext, params: CatalogWriteInput,
                 output: CatalogWriteOutput) -> None:
        (ctx.workspace / output.filePath).unlink(missing_ok=True)


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
        base = os.environ.get("ENVFORGE_BACKSTAGE_URL", "").rstrip("/")
        if not base:
            raise ConfigurationError(f"{step}: set ENVFORGE_BACKSTAGE_URL (and "
                                     "ENVFORGE_BACKSTAGE_TOKEN) to the Backstage to register in")
        token = os.environ.get("ENVFORGE_BACKSTAGE_TOKEN", "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = httpx.post(f"{base}/api/catalog/locations", headers=headers,
                                  json={"type": "url", "target": params.url}, timeout=60.0)
        except httpx.HTTPError as e:
            if params.optional:
                ctx.logger.warning("%s: Backstage did not answer (%s); optional, skipped",
                                   step, type(e).__name__)
                return CatalogRegisterOutput(catalogInfoUrl=params.url)
            raise ActionError(f"{step}: Backstage at {base} did not answer "
                              f"({type(e).__name__})") from None
        if response.status_code >= 400:
            if params.optional:
                ctx.logger.warning("%s: Backstage answered %s; optional, skipped", step,
                                   response.status_code)
                return CatalogRegisterOutput(catalogInfoUrl=params.url)
            detail = response.text[:200].replace(token, "***") if token else response.text[:200]
            raise ActionError(f"{step}: Backstage answered {response.status_code}: {detail}")
        entities = response.json().get("entities") or []
        ref = None
        if entities:
            meta = entities[0].get("metadata", {})
            ref = (f"{str(entities[0].get('kind', 'component')).lower()}:"
                   f"{meta.get('namespace', 'default')}/{meta.get('name')}")
        return CatalogRegisterOutput(entityRef=ref, catalogInfoUrl=params.url)


ACTIONS: list[type[Action[Any, Any]]] = [CatalogWrite, CatalogRegister]
