"""Which template a repository's pull requests get: a small YAML mapping file.

    default: python-service            # optional; repositories not listed use it
    repositories:
      acme/orders-api: python-service  # short form: the template name
      acme/web:                        # long form: template plus flow parameters
        template: node-service
        parameters: {replicas: 1}
        ttl: 3d
        allow_forks: false             # pull requests from forks are ignored unless true

Repository keys are matched case-insensitively ("owner/name" on GitHub, the full project path
on GitLab). Without a file, every repository uses the ``--template`` default, if one is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envforge.errors import TemplateMappingError


class RepositoryTemplate(BaseModel):
    """The template (and optional create-flow parameters) for one repository's PRs."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)
    ttl: str | None = None
    environment_type: str = "preview"
    #: Build pull requests whose head is in a fork. Off by default: a fork's code would run
    #: with the environment's secrets and database.
    allow_forks: bool = False


class _MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: RepositoryTemplate | None = None
    repositories: dict[str, RepositoryTemplate] = Field(default_factory=dict)


def _long_form(value: Any) -> Any:
    return {"template": value} if isinstance(value, str) else value


class TemplateMapping:
    """Repository name → RepositoryTemplate, with an optional default."""

    def __init__(self, repositories: dict[str, RepositoryTemplate] | None = None,
                 default: RepositoryTemplate | None = None) -> None:
        self._repositories = {k.lower(): v for k, v in (repositories or {}).items()}
        self.default = default

    @classmethod
    def from_data(cls, data: Any, source: str = "mapping") -> TemplateMapping:
        """Build from parsed YAML; every problem is reported with its field path."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise TemplateMappingError(f"{source}: expected a mapping with 'default' and/or "
                                       "'repositories'")
        shaped = dict(data)
        if "default" in shaped:
            shaped["default"] = _long_form(shaped["default"])
        repos = shaped.get("repositories")
        if isinstance(repos, dict):
            shaped["repositories"] = {str(k): _long_form(v) for k, v in repos.items()}
        try:
            parsed = _MappingFile.model_validate(shaped)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
            )
            raise TemplateMappingError(f"{source}: {problems}") from None
        return cls(parsed.repositories, parsed.default)

    @classmethod
    def load(cls, path: Path) -> TemplateMapping:
        """Read a mapping file; a missing or malformed file is a TemplateMappingError."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise TemplateMappingError(
                f"mapping file {path}: cannot read it ({e.strerror}); pass an existing file "
                "to --mapping"
            ) from None
        except yaml.YAMLError as e:
            raise TemplateMappingError(f"mapping file {path}: not valid YAML: {e}") from None
        return cls.from_data(data, source=f"mapping file {path}")

    def template_for(self, repository: str) -> RepositoryTemplate | None:
        """The entry for ``repository``, else the default, else None (event is ignored)."""
        return self._repositories.get(repository.lower(), self.default)

    def __len__(self) -> int:
        return len(self._repositories)
