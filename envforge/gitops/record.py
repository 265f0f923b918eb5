"""The Environment record: ``environments/<name>/environment.yaml`` in the GitOps repository.

In the spirit of a platform API object (apiVersion/kind/metadata/spec/status): what was asked
for (template, type, owner, parameters, source, isolation, custom hosts) and what envforge
made of it (when it was created and last deployed, when it expires, where it is reachable).
Parameters never hold secret values: keys that look like credentials are left out before a
record is made.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from envforge.core.sensitive import without_credentials
from envforge.errors import DomainError, GitOpsError
from envforge.gitops.naming import check_custom_host

API_VERSION: Literal["envforge.dev/v1alpha1"] = "envforge.dev/v1alpha1"
KIND: Literal["Environment"] = "Environment"
EnvironmentType = Literal["preview", "development", "staging"]
IsolationMode = Literal["namespace", "vcluster", "cluster"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Source(_Strict):
    """Where the environment's code comes from."""

    repository: str | None = None
    branch: str | None = None
    pullRequest: int | None = None
    commit: str | None = None


class Isolation(_Strict):
    """Logical isolation in a namespace, or physical: a vcluster or another cluster."""

    mode: IsolationMode = "namespace"
    cluster: str | None = Field(
        None, description="mode cluster: Argo CD destination (cluster name or https:// URL)")


class Metadata(_Strict):
    name: str


class EnvironmentSpec(_Strict):
    template: str
    type: EnvironmentType = "preview"
    owner: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    source: Source = Field(default_factory=Source)
    isolation: Isolation = Field(default_factory=Isolation)
    domains: list[str] = Field(
        default_factory=list,
        description="custom hosts bound to the environment (each gets its own Ingress)")

    @field_validator("domains")
    @classmethod
    def _normal_domains(cls, domains: list[str]) -> list[str]:
        """DNS names, lower-cased, each once, in the order they were bound."""
        try:
            normal = [check_custom_host(host) for host in domains]
        except DomainError as e:
            raise ValueError(str(e)) from None
        return list(dict.fromkeys(normal))


class TemplateVersion(_Strict):
    """Which version of its template made the environment (see envforge.gitops.versions)."""

    version: str | None = Field(None, description="the template's metadata.version, if any")
    digest: str = Field(description="sha256 of the template directory's files")
    envforge: str = Field(description="the envforge release that rendered it")


class SleepState(_Strict):
    """An environment put to sleep: its workloads scaled to zero in Git
    (see envforge.environments.sleep)."""

    since: datetime
    reason: str
    replicas: dict[str, int | None] = Field(
        default_factory=dict, description="'<file>#<Kind>/<name>' -> replicas before sleep "
        "(None: the manifest left replicas out)")


class EnvironmentStatus(_Strict):
    namespace: str
    host: str
    url: str
    createdAt: datetime
    expiresAt: datetime
    lastDeployedAt: datetime
    lastRun: str | None = None
    #: absent on records made before template versions (and written only when known)
    templateVersion: TemplateVersion | None = None
    sleeping: SleepState | None = None


class EnvironmentRecord(_Strict):
    apiVersion: Literal["envforge.dev/v1alpha1"] = API_VERSION
    kind: Literal["Environment"] = KIND
    metadata: Metadata
    spec: EnvironmentSpec
    status: EnvironmentStatus

    @property
    def name(self) -> str:
        return self.metadata.name

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True)
        if not data["spec"].get("domains"):
            data["spec"].pop("domains", None)  # records without custom hosts stay as they were
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)

    @classmethod
    def from_yaml(cls, text: str, where: str) -> EnvironmentRecord:
        try:
            return cls.model_validate(yaml.safe_load(text))
        except (yaml.YAMLError, ValidationError) as e:
            raise GitOpsError(f"{where}: not a valid Environment record ({e}); fix or remove "
                              "it in the GitOps repository") from None

    def extended(self, seconds: int, now: datetime | None = None) -> EnvironmentRecord:
        """A copy expiring ``seconds`` from now (extend never shortens an environment's life)."""
        expires = max(self.status.expiresAt, (now or utc_now()) + timedelta(seconds=seconds))
        return self.model_copy(update={
            "status": self.status.model_copy(update={"expiresAt": expires})})


def utc_now() -> datetime:
    """Now, to the second, in UTC (records stay readable and diffs stay small)."""
    return datetime.now(UTC).replace(microsecond=0)


def public_parameters(parameters: dict[str, Any], marked: set[str] | None = None
                      ) -> tuple[dict[str, Any], list[str]]:
    """Parameters fit for Git: keys named like credentials (``db_pwd``, ``dbPass``,
    ``passphrase``...) and the dotted paths in ``marked`` (the template's schema hints) are
    dropped; the dropped paths are returned, never their values."""
    return without_credentials(parameters, marked)
