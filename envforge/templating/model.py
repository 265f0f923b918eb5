"""The template format: Backstage's ``scaffolder.backstage.io/v1beta3`` Template, as data.

Keys Backstage allows that envforge does not use (``backstage:permissions``, annotations,
presentation hints) are kept, so a template written for Backstage loads unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

API_VERSION = "scaffolder.backstage.io/v1beta3"
#: Backstage's schema takes any string as a step id; envforge refuses only what would break
#: ``steps['<id>']`` lookups and log lines (whitespace, quotes, braces).
STEP_ID = re.compile(r"^[^\s'\"{}\[\]]+$")
#: Backstage's entity name rule: letters, digits, '-', '_', '.', alphanumeric at both ends.
ENTITY_NAME = re.compile(r"[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TemplateMetadata(_Open):
    name: str = Field(description="Unique template name; also its directory name.")
    title: str | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_is_an_entity_name(cls, v: str) -> str:
        if not ENTITY_NAME.fullmatch(v) or len(v) > 63:
            raise ValueError(
                f"{v!r} must be letters, digits, '-', '_' or '.', starting and ending with a "
                "letter or digit (at most 63 characters), as Backstage requires"
            )
        return v


class TemplateStep(_Open):
    #: optional in Backstage; the loader names an unnamed step ``step-<n>`` (1-based)
    id: str
    name: str | None = None
    action: str
    input: dict[str, Any] = Field(default_factory=dict)
    if_: Any = Field(default=None, alias="if")
    #: run the step once per item (``${{ each.key }}`` / ``${{ each.value }}``), as Backstage
    each: Any = None
    #: envforge's own key: ids of earlier steps this one waits for, beyond what the runner
    #: infers (docs/backstage.md, "Steps in parallel")
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")

    @field_validator("id")
    @classmethod
    def _id_is_usable(cls, v: str) -> str:
        if not STEP_ID.match(v):
            raise ValueError(f"step id {v!r} must not contain spaces, quotes or brackets")
        return v

    @property
    def display_name(self) -> str:
        return self.name or self.id


class OutputLink(_Open):
    title: str | None = None
    url: str | None = None
    icon: str | None = None
    entityRef: str | None = None
    if_: Any = Field(default=None, alias="if")


class OutputText(_Open):
    title: str | None = None
    content: str
    default: bool | None = None
    if_: Any = Field(default=None, alias="if")


class TemplateOutput(_Open):
    links: list[OutputLink] = Field(default_factory=list)
    text: list[OutputText] = Field(default_factory=list)


class TemplateSpec(_Open):
    owner: str | None = None
    type: str
    parameters: dict[str, Any] | list[dict[str, Any]] = Field(default_factory=list)
    steps: list[TemplateStep] = Field(default_factory=list)
    output: TemplateOutput = Field(default_factory=TemplateOutput)

    @model_validator(mode="before")
    @classmethod
    def _name_unnamed_steps(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("steps"), list):
            steps = [dict(s) if isinstance(s, dict) else s for s in data["steps"]]
            for i, step in enumerate(steps):
                if isinstance(step, dict) and step.get("id") in (None, ""):
                    step["id"] = f"step-{i + 1}"
            data = {**data, "steps": steps}
        return data

    @model_validator(mode="after")
    def _step_ids_unique(self) -> TemplateSpec:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice; step ids must be unique")
            for other in step.depends_on:
                if other not in seen:
                    raise ValueError(
                        f"step {step.id!r} dependsOn {other!r}, which is not a step before it; "
                        "dependsOn names earlier step ids (steps run in template order when "
                        "they depend on each other)")
            seen.add(step.id)
        return self


class Template(_Open):
    apiVersion: Literal["scaffolder.backstage.io/v1beta3"]
    kind: Literal["Template"]
    metadata: TemplateMetadata
    spec: TemplateSpec
    #: Directory holding template.yaml (set by the loader; skeleton paths are relative to it).
    directory: Path = Field(default=Path("."), exclude=True)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def file(self) -> Path:
        return self.directory / "template.yaml"
