"""catalog:write: a Backstage catalog entity file in the workspace, with Backstage's inputs.

The entity is written as YAML (``filePath``, default ``catalog-info.yaml``) and published with
the rest of the workspace. catalog:register (registering the file with a Backstage catalog)
is not implemented: envforge has no catalog of its own to register into.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
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


ACTIONS: list[type[Action[Any, Any]]] = [CatalogWrite]
