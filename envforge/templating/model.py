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
STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TemplateMetadata(_Open):
    name: str = Field(description="Unique template name; also its directory name.")
    title: str | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_is_a_label(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", v) or len(v) > 63:
            raise ValueError(
                f"{v!r} must be lower-case letters, digits and '-' (at most 63 characters)"
            )
        return v


class TemplateStep(_Open):
    id: str
    name: str | None = None
    action: str
    input: dict[str, Any] = Field(default_factory=dict)
    if_: Any = Field(default=None, alias="if")

    @field_validator("id")
    @classmethod
    def _id_is_an_identifier(cls, v: str) -> str:
        if not STEP_ID.match(v):
            raise ValueError(f"step id {v!r} must be letters, digits, '_' or '-'")
        return v

    @property
    def display_name(self) -> str:
        return self.name or self.id


class OutputLink(_Open):
    title: str | None = None
    url: str | None = None
    icon: str | None = None
    entityRef: str | None = None


class OutputText(_Open):
    title: str | None = None
    content: str
    default: bool | None = None


class TemplateOutput(_Open):
    links: list[OutputLink] = Field(default_factory=list)
    text: list[OutputText] = Field(default_factory=list)


class TemplateSpec(_Open):
    owner: str | None = None
    type: str
    parameters: dict[str, Any] | list[dict[str, Any]] = Field(default_factory=list)
    steps: list[TemplateStep] = Field(default_factory=list)
    output: TemplateOutput = Field(default_factory=TemplateOutput)

    @model_validator(mode="after")
    def _step_ids_unique(self) -> TemplateSpec:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice; step ids must be unique")
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
