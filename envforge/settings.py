"""envforge's settings: one typed model, read from ``ENVFORGE_*`` variables in one place.

The model (:class:`EnvforgeSettings`, a pydantic-settings ``BaseSettings``) has one section per
concern (paths, gitops, runner, render, lifecycle, webhooks, db, images, fetch, budgets,
cluster, providers, warm runner, prefect, and the other tools' own variables envforge follows:
vault's VAULT_*, libpq's PG*); every field is described once, and ``docs/settings.md`` is generated
from those descriptions (``python -m envforge.settings --markdown``; a unit test fails when the
page is stale). The variable names are flat and historical (``ENVFORGE_GITOPS_URL``,
``ENVFORGE_MAX_TTL``): each field names its own, after the ``ENVFORGE_`` prefix. An empty
variable counts as unset.

Only this module reads the environment for envforge's own settings. The composition roots (the
CLI and the flows, see :mod:`envforge.services`) call :func:`load_settings` once and hand the
result down; a deep module whose caller has no settings yet calls :func:`load_settings` itself
rather than reading a variable. Tests build settings without the environment:
``EnvforgeSettings.from_environ({...})`` or sections constructed directly.

Errors: a variable that does not parse is one :class:`~envforge.errors.ConfigurationError`
naming the variable and what it needs.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from envforge.errors import ConfigurationError

ENV_PREFIX = "ENVFORGE_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def setting(default: Any = None, *, env: str, description: str, prefixed: bool = True,
            **constraints: Any) -> Any:
    """A settings field read from ``ENVFORGE_<env>`` (or ``<env>`` for another tool's variable
    envforge follows, such as KUBECONFIG), described once (docs come from here)."""
    name = ENV_PREFIX + env if prefixed else env
    return Field(default, description=description, json_schema_extra={"env": name},
                 **constraints)


def env_name(field: FieldInfo) -> str:
    """The variable a settings field is read from."""
    extra = field.json_schema_extra
    assert isinstance(extra, dict), "every settings field is declared with setting()"
    return str(extra["env"])


class Section(BaseModel):
    """One section of the settings: frozen, unknown keys refused, built without the environment
    when constructed directly (tests), from it through :class:`EnvforgeSettings`."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _split(value: Any, pattern: str) -> Any:
    """A list variable's text split on ``pattern``, empty parts dropped."""
    if isinstance(value, str):
        return tuple(p for p in re.split(pattern, value) if p)
    return value


#: a list setting whose variable separates its items with spaces or commas
Words = Annotated[tuple[str, ...], BeforeValidator(lambda value: _split(value, r"[\s,]+"))]


class PathsSection(Section):
    """Where envforge keeps its state and finds its templates."""

    home: Path = setting(Path.home() / ".envforge", env="HOME", description=(
        "State: caches, snapshots and the embedded GitOps repository."))
    templates_path: tuple[Path, ...] = setting(
        (PROJECT_ROOT / "templates",), env="TEMPLATES_PATH", description=(
            "Template directories, separated by the OS path separator (':'); default: the "
            "project's templates/ directory."))

    @field_validator("home", mode="before")
    @classmethod
    def _expand_home(cls, value: Any) -> Any:
        return Path(value).expanduser() if isinstance(value, str) else value

    @field_validator("templates_path", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        parts = _split(value, re.escape(os.pathsep))
        return tuple(Path(p).expanduser() for p in parts) if isinstance(value, str) else parts


class GitOpsSection(Section):
    """The GitOps repository and what envforge renders into it (platform-wide)."""

    url: str | None = setting(env="GITOPS_URL", description=(
        "Where publish steps push when a template names no repository; default: a bare "
        "repository at $ENVFORGE_HOME/gitops.git, created on first use."))
    branch: str = setting("main", env="GITOPS_BRANCH", description=(
        "Branch of the GitOps repository."))
    credentials_block: str | None = setting(env="GITOPS_BLOCK", description=(
        "GitCredentials block for the GitOps remote (optional)."))
    git_lock_timeout: float = setting(600.0, env="GIT_LOCK_TIMEOUT", ge=0, le=86400,
                                      description=(
        "Seconds a publish waits for the lock of its cached working copy."))
    push_attempts: int = setting(30, env="GIT_PUSH_ATTEMPTS", ge=1, le=1000, description=(
        "Most attempts of one publish whose push keeps losing races with other writers "
        "(each attempt syncs and re-applies the change); the one retry of a push race."))
    push_retry_seconds: float = setting(120.0, env="GIT_PUSH_RETRY_SECONDS", ge=0, le=3600,
                                        description=(
        "Most seconds one publish spends retrying lost push races, from its first attempt."))
    wildcard_domain: str = setting("preview.example.test", env="WILDCARD_DOMAIN", description=(
        "Environment hosts are <name>-<random>.<domain>."))
    tls_secret: str = setting("wildcard-tls", env="TLS_SECRET", description=(
        "Secret holding the wildcard certificate."))
    custom_domain_tls_secret_template: str = setting(
        "tls-{label}", env="CUSTOM_DOMAIN_TLS_SECRET_TEMPLATE", description=(
            "Secret name of a custom host's certificate; {label} is the host with '.' as '-', "
            "{environment} the environment's name."))
    ingress_class: str = setting("nginx", env="INGRESS_CLASS", description=(
        "ingressClassName of generated Ingresses."))
    ingress_namespace: str = setting("ingress-nginx", env="INGRESS_NAMESPACE", description=(
        "Namespace of the ingress controller the NetworkPolicy admits."))
    default_ttl: str = setting("48h", env="DEFAULT_TTL", description=(
        "Time to live of an environment when none is given (e.g. 48h, 3d)."))
    max_ttl: str = setting("14d", env="MAX_TTL", description=(
        "Longest time to live allowed at create or extend."))
    kubernetes_version: str = setting("1.31", env="KUBERNETES_VERSION", description=(
        "Kubernetes version manifests are validated against offline."))
    argocd_namespace: str = setting("argocd", env="ARGOCD_NAMESPACE", description=(
        "Namespace Argo CD Applications live in."))
    argocd_project: str = setting("default", env="ARGOCD_PROJECT", description=(
        "Argo CD project of environment Applications."))


class RunnerSection(Section):
    """How a template run runs and who it runs for."""

    max_parallel_steps: int = setting(4, env="MAX_PARALLEL_STEPS", ge=1, description=(
        "Steps of one run that may run at the same time; 1 runs them in template order."))
    user: str | None = setting(env="USER", description=(
        "The caller (${{ user.ref }}), e.g. user:default/jane; default: the OS user."))
    run_id: str | None = setting(env="RUN_ID", description=(
        "Run id the CLI records in commits; default cli-<pid>."))
    template: str | None = setting(env="TEMPLATE", description=(
        "The template a per-template deployment runs (set by 'envforge deploy' in the "
        "deployment's job variables)."))


class RenderSection(Section):
    """The budget of author-written expressions, renders and inputs."""

    timeout_seconds: float = setting(5.0, env="RENDER_TIMEOUT_S", gt=0, description=(
        "Seconds per expression or skeleton file."))
    max_chars: int = setting(5_000_000, env="RENDER_MAX_CHARS", gt=0, description=(
        "Largest text one render may produce."))
    max_items: int = setting(100_000, env="RENDER_MAX_ITEMS", gt=0, description=(
        "Largest range, list or repetition."))
    template_max_bytes: int = setting(1 << 20, env="TEMPLATE_MAX_BYTES", gt=0, description=(
        "Largest template.yaml."))
    values_max_bytes: int = setting(1 << 20, env="VALUES_MAX_BYTES", gt=0, description=(
        "Largest --values file or value set."))


class LifecycleSection(Section):
    """Environment runs: locking, sleeping, pull request feedback."""

    env_lock_timeout: float = setting(1800.0, env="ENV_LOCK_TIMEOUT", ge=0, description=(
        "Seconds a run waits for another run of the same environment before failing."))
    sleep_policy: str | None = setting(env="SLEEP_POLICY", description=(
        "Sleep policy per environment type: a YAML/JSON file path or the text itself; "
        "default: the built-in policy."))
    sleep_counts_toward_expiry: bool = setting(
        True, env="SLEEP_COUNTS_TOWARD_EXPIRY", description=(
            "A sleeping environment still expires on time; false adds time asleep to its "
            "life."))
    pr_comment_block: str | None = setting(env="PR_COMMENT_BLOCK", description=(
        "GitProviderToken block that posts run summaries on pull requests (optional)."))
    pr_status_block: str | None = setting(env="PR_STATUS_BLOCK", description=(
        "GitProviderToken block that sets environment states on pull requests; default: "
        "ENVFORGE_PR_COMMENT_BLOCK."))

    @property
    def status_block(self) -> str | None:
        """The block that reports pull request states (status, else comment block)."""
        return self.pr_status_block or self.pr_comment_block


class WebhookSection(Section):
    """The webhook server's shared secrets (or the block that holds them)."""

    github_secret: SecretStr | None = setting(env="GITHUB_WEBHOOK_SECRET", description=(
        "Secret GitHub signs deliveries with (X-Hub-Signature-256); unset: GitHub off."))
    gitlab_token: SecretStr | None = setting(env="GITLAB_WEBHOOK_TOKEN", description=(
        "Token GitLab sends with deliveries (X-Gitlab-Token); unset: GitLab off."))
    secrets_block: str | None = setting(env="WEBHOOK_SECRETS_BLOCK", description=(
        "WebhookSecrets block holding both instead (optional)."))


class DatabaseSection(Section):
    """Databases: the anonymisation key and the PostgreSQL client tools."""

    anonymisation_key: SecretStr | None = setting(env="ANONYMISATION_KEY", description=(
        "Key of the keyed anonymisation transforms when no AnonymisationKey block is named."))
    anonymisation_key_ref: str | None = setting(env="ANONYMISATION_KEY_REF", description=(
        "Or a Vault reference to it (vault:path#field)."))
    reader: Literal["psql", "psycopg"] = setting("psql", env="DB_READER", description=(
        "What reads a clone's COPY stream from the source."))
    binary_copy: bool = setting(True, env="DB_BINARY_COPY", description=(
        "Copy tables in binary COPY where exact (same major version, built-in types); false: "
        "text COPY for every table."))
    pg_bin: Path | None = setting(env="PG_BIN", description=(
        "Directory of pg_dump/pg_restore/psql; default PostgreSQL 15's, then PATH."))


class ImageSection(Section):
    """Image builds: registry, caches, buildah and Kaniko."""

    registry: str | None = setting(env="REGISTRY", description=(
        "Registry address images are pushed to when no ContainerRegistry block is named."))
    source_cache: Path | None = setting(env="SOURCE_CACHE", description=(
        "Git mirror cache of build sources; default $ENVFORGE_HOME/cache/sources."))
    buildah_root: Path | None = setting(env="BUILDAH_ROOT", description=(
        "buildah's storage; default $ENVFORGE_HOME/cache/buildah."))
    buildah_driver: str = setting("vfs", env="BUILDAH_DRIVER", description=(
        "buildah's storage driver."))
    kaniko_namespace: str = setting("envforge-builds", env="KANIKO_NAMESPACE", description=(
        "Namespace of Kaniko build Jobs."))
    kaniko_registry_secret: str = setting(
        "envforge-registry", env="KANIKO_REGISTRY_SECRET", description=(
            "dockerconfigjson Secret Kaniko pushes with."))
    kaniko_git_secret: str | None = setting(env="KANIKO_GIT_SECRET", description=(
        "Secret (username, token) Kaniko clones private repositories with."))
    sources: Words = setting(
        ("https://", "ssh://", "git@"), env="IMAGE_SOURCES", description=(
            "Repository URL prefixes a template's image:build may build from (space or comma "
            "separated); a local repository only under a listed file:///folder/."))


class FetchSection(Section):
    """fetch:* actions: what may be downloaded, and how much."""

    allow: Words = setting((), env="FETCH_ALLOW", description=(
        "URL prefixes remote fetches may start with (space or comma separated); empty: no "
        "remote fetch."))
    max_bytes: int = setting(50 * 1024 * 1024, env="FETCH_MAX_BYTES", gt=0, description=(
        "Largest download and unpacked size of one fetch."))
    timeout_seconds: int = setting(120, env="FETCH_TIMEOUT_S", gt=0, description=(
        "Seconds one transfer may take."))
    max_entries: int = setting(20_000, env="FETCH_MAX_ENTRIES", gt=0, description=(
        "Most files one fetched archive or repository may unpack to."))
    private_hosts: Words = setting((), env="EGRESS_PRIVATE_HOSTS", description=(
        "Hosts on private addresses the egress client may reach anyway (space or comma "
        "separated)."))


class BudgetSection(Section):
    """What one run may write and repeat (the workspace file API and the runner)."""

    max_files: int = setting(20_000, env="MAX_FILES", gt=0, description=(
        "Most files a run may write into its workspace."))
    max_write_bytes: int = setting(512 * 1024 * 1024, env="MAX_WRITE_BYTES", gt=0,
                                   description="Most bytes a run may write into its workspace.")
    max_depth: int = setting(32, env="MAX_DEPTH", gt=0, description=(
        "Deepest directory nesting in a workspace."))
    max_each_items: int = setting(1_000, env="MAX_EACH_ITEMS", gt=0, description=(
        "Most items one each: step may run."))
    max_task_runs: int = setting(2_000, env="MAX_TASK_RUNS", gt=0, description=(
        "Most task runs (steps and items) one run may start."))
    max_string_length: int = setting(10_000, env="MAX_STRING_LENGTH", gt=0, description=(
        "Longest string a template parameter may hold."))


class CloneSection(Section):
    """git clones of a pull/merge request's target repository, bounded while git runs."""

    max_bytes: int = setting(100 * 1024 * 1024, env="CLONE_MAX_BYTES", gt=0, description=(
        "Most bytes one clone may transfer, and its checked-out files may add up to."))
    max_entries: int = setting(20_000, env="CLONE_MAX_ENTRIES", gt=0, description=(
        "Most files one cloned commit may hold (checked before anything is checked out)."))
    timeout_seconds: int = setting(120, env="CLONE_TIMEOUT_S", gt=0, description=(
        "Seconds one clone (transfer and checkout) may take."))


class ClusterSection(Section):
    """Talking to the target cluster."""

    server_dry_run: bool = setting(True, env="SERVER_DRY_RUN", description=(
        "Validate manifests with a server-side dry run when a cluster is configured."))
    kubeconfig: str | None = setting(env="KUBECONFIG", prefixed=False, description=(
        "kubectl's variable: the cluster envforge talks to when no KubernetesCluster block is "
        "named."))
    service_host: str | None = setting(env="KUBERNETES_SERVICE_HOST", prefixed=False,
                                       description=(
        "Set by Kubernetes inside a pod: without KUBECONFIG, the pod's own cluster is used."))

    @property
    def configured(self) -> bool:
        """A cluster to ask: KUBECONFIG set, or running in a pod."""
        return bool(self.kubeconfig or self.service_host)


class PrefectSection(Section):
    """The Prefect server the CLI talks to (Prefect's own variable, read the same way)."""

    api_url: str | None = setting(env="PREFECT_API_URL", prefixed=False, description=(
        "Prefect's variable: the server deployments, blocks and webhook runs go to."))


class ProviderSection(Section):
    """Git providers' and Backstage's APIs, for actions that call them."""

    github_api_url: str | None = setting(env="GITHUB_API_URL", description=(
        "GitHub API base; default https://api.github.com (or the host's /api/v3)."))
    gitlab_api_url: str | None = setting(env="GITLAB_API_URL", description=(
        "GitLab API base; default https://<host>/api/v4."))
    github_host: str | None = setting(env="GITHUB_HOST", description=(
        "GitHub host (GitHub Enterprise); default github.com."))
    gitlab_host: str | None = setting(env="GITLAB_HOST", description=(
        "GitLab host; default gitlab.com."))
    github_git_url: str | None = setting(env="GITHUB_GIT_URL", description=(
        "Base URL Git clones from GitHub use; default https://<host>."))
    gitlab_git_url: str | None = setting(env="GITLAB_GIT_URL", description=(
        "Base URL Git clones from GitLab use; default https://<host>."))
    github_token: SecretStr | None = setting(env="GITHUB_TOKEN", description=(
        "Token of publish:github when its step gives none."))
    gitlab_token: SecretStr | None = setting(env="GITLAB_TOKEN", description=(
        "Token of publish:gitlab when its step gives none."))
    azure_host: str | None = setting(env="AZURE_HOST", description=(
        "Azure DevOps host a publish:azure repoUrl must name; default dev.azure.com."))
    azure_api_url: str | None = setting(env="AZURE_API_URL", description=(
        "Azure DevOps REST API base; default https://<host>."))
    azure_git_url: str | None = setting(env="AZURE_GIT_URL", description=(
        "Base URL Azure DevOps Git pushes use; default https://<host>."))
    azure_token: SecretStr | None = setting(env="AZURE_TOKEN", description=(
        "Personal access token of publish:azure when its step gives none."))
    github_webhook_repositories: Words = setting(
        (), env="GITHUB_WEBHOOK_REPOSITORIES", description=(
            "owner/repo patterns (shell globs, space or comma separated) on which github:webhook"
            " may create hooks with the operator's token, beyond the repositories its own run "
            "created; empty: only those."))
    backstage_url: str | None = setting(env="BACKSTAGE_URL", description=(
        "Backstage the catalog:register action registers in."))
    backstage_token: SecretStr | None = setting(env="BACKSTAGE_TOKEN", description=(
        "Bearer token for that Backstage."))


class VaultSection(Section):
    """Vault's (and OpenBao's) own variables: the server a VaultConnection without a saved block
    talks to (token auth)."""

    address: str | None = setting(env="VAULT_ADDR", prefixed=False, description=(
        "Vault's variable: the server's address, used when no VaultConnection block is "
        "named."))
    token: SecretStr | None = setting(env="VAULT_TOKEN", prefixed=False, description=(
        "Vault's variable: the token to log in with."))
    namespace: str | None = setting(env="VAULT_NAMESPACE", prefixed=False, description=(
        "Vault's variable: the namespace (Vault Enterprise)."))
    ca_cert: str | None = setting(env="VAULT_CACERT", prefixed=False, description=(
        "Vault's variable: a CA bundle file to trust."))
    skip_verify: bool = setting(False, env="VAULT_SKIP_VERIFY", prefixed=False, description=(
        "Vault's variable: do not verify the server's TLS certificate."))
    template_paths: Words = setting(
        ("*/{template}/**",), env="VAULT_TEMPLATE_PATHS", description=(
            "Vault paths (mount/path patterns, space or comma separated; {template} is the "
            "template's name, * one segment, ** any) a template's vault:secrets step and form "
            "credentials may read; the default gives each template its own folder."))


class LibpqSection(Section):
    """libpq's own variables: the PostgreSQL server a DatabaseServer without a saved block
    points at, and the defaults of a connection string that leaves a part out."""

    host: str | None = setting(env="PGHOST", prefixed=False, description=(
        "libpq's variable: the server's host, used when no DatabaseServer block is named."))
    port: int | None = setting(env="PGPORT", prefixed=False, gt=0, lt=65536, description=(
        "libpq's variable: its port (default 5432)."))
    user: str | None = setting(env="PGUSER", prefixed=False, description=(
        "libpq's variable: the role to log in as (default postgres)."))
    password: SecretStr | None = setting(env="PGPASSWORD", prefixed=False, description=(
        "libpq's variable: that role's password."))
    database: str | None = setting(env="PGDATABASE", prefixed=False, description=(
        "libpq's variable: the database a connection string without one names (default "
        "postgres)."))
    sslmode: str | None = setting(env="PGSSLMODE", prefixed=False, description=(
        "libpq's variable: sslmode (default prefer)."))


class WarmRunnerSection(Section):
    """The warm runner flow runs start in (envforge.launch.flow_start,
    envforge.launch.warm_runner)."""

    socket: Path | None = setting(env="WARM_RUNNER_SOCKET", description=(
        "Unix socket of the warm runner; unset: every flow run starts cold."))


_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("envforge_environ", default=None)


class _FlatEnvironment(PydanticBaseSettingsSource):
    """Reads each section's fields from their flat ``ENVFORGE_*`` names (empty is unset)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ does the work section by section

    def __call__(self) -> dict[str, Any]:
        environ = _ENVIRON.get()
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for section_name, section in self.settings_cls.model_fields.items():
            model = section.annotation
            assert isinstance(model, type) and issubclass(model, Section)
            found = {name: environ[env_name(field)] for name, field in model.model_fields.items()
                     if environ.get(env_name(field), "").strip()}
            if found:
                values[section_name] = found
        return values


class EnvforgeSettings(BaseSettings):
    """All of envforge's settings, one section per concern."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix=ENV_PREFIX)

    paths: PathsSection = Field(default_factory=PathsSection)
    gitops: GitOpsSection = Field(default_factory=GitOpsSection)
    runner: RunnerSection = Field(default_factory=RunnerSection)
    render: RenderSection = Field(default_factory=RenderSection)
    lifecycle: LifecycleSection = Field(default_factory=LifecycleSection)
    webhooks: WebhookSection = Field(default_factory=WebhookSection)
    db: DatabaseSection = Field(default_factory=DatabaseSection)
    images: ImageSection = Field(default_factory=ImageSection)
    fetch: FetchSection = Field(default_factory=FetchSection)
    budgets: BudgetSection = Field(default_factory=BudgetSection)
    clone: CloneSection = Field(default_factory=CloneSection)
    cluster: ClusterSection = Field(default_factory=ClusterSection)
    providers: ProviderSection = Field(default_factory=ProviderSection)
    warm_runner: WarmRunnerSection = Field(default_factory=WarmRunnerSection)
    prefect: PrefectSection = Field(default_factory=PrefectSection)
    vault: VaultSection = Field(default_factory=VaultSection)
    libpq: LibpqSection = Field(default_factory=LibpqSection)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Values given to the constructor, then the flat ``ENVFORGE_*`` variables."""
        return init_settings, _FlatEnvironment(settings_cls)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EnvforgeSettings:
        """Settings from ``environ`` instead of the process environment (tests, a warm
        runner's caller); ConfigurationError naming the variable when one does not parse."""
        token = _ENVIRON.set(environ)
        try:
            return cls()
        except ValidationError as e:
            raise _configuration_error(e) from None
        finally:
            _ENVIRON.reset(token)

    # --- derived values ------------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        """Caches (Git working copies, mirrors) under the envforge home."""
        return self.paths.home / "cache"

    @property
    def embedded_gitops_repo(self) -> Path:
        """The local bare repository used when no ENVFORGE_GITOPS_URL is set."""
        return self.paths.home / "gitops.git"

    @property
    def gitops_url(self) -> str:
        """Where publish steps push by default (the embedded repository when unset)."""
        return self.gitops.url or self.embedded_gitops_repo.as_uri()


    def as_environ(self) -> dict[str, str]:
        """The settings as the variables that would give them, defaults included (secret
        values included: for in-process builders such as ``Capabilities.from_environ``, never
        for logs or subprocesses)."""
        found: dict[str, str] = {}
        for section_name in type(self).model_fields:
            values = getattr(self, section_name)
            for name, field in type(values).model_fields.items():
                value = getattr(values, name)
                if value is None or value == ():
                    continue
                if isinstance(value, SecretStr):
                    value = value.get_secret_value()
                if isinstance(value, tuple):
                    separator = os.pathsep if name == "templates_path" else " "
                    value = separator.join(str(v) for v in value)
                if isinstance(value, bool):
                    value = "true" if value else "false"
                found[env_name(field)] = str(value)
        return found


def _configuration_error(error: ValidationError) -> ConfigurationError:
    """One line naming the variable that did not parse (never its value: it may be secret)."""
    first = error.errors()[0]
    loc = [str(p) for p in first["loc"]]
    name = ".".join(loc)
    if len(loc) >= 2 and loc[0] in EnvforgeSettings.model_fields:
        model = EnvforgeSettings.model_fields[loc[0]].annotation
        assert isinstance(model, type) and issubclass(model, Section)
        field = model.model_fields.get(loc[1])
        if field is not None:
            name = env_name(field)
    return ConfigurationError(f"{name}: {first['msg']}; fix or unset it")


def load_settings() -> EnvforgeSettings:
    """The settings from the process environment (read on every call: cheap, and a test or a
    warm runner that changes the environment sees the change), with the overrides of an
    enclosing :func:`environ_overrides` block."""
    overridden = _ENVIRON.get()
    return EnvforgeSettings.from_environ(os.environ if overridden is None else overridden)


@contextmanager
def environ_overrides(values: Mapping[str, str]) -> Iterator[None]:
    """Within the block, :func:`load_settings` reads ``values`` over the process environment
    (for the CLI's flags that set a setting for one command, without touching os.environ)."""
    base = _ENVIRON.get()
    merged = {**(os.environ if base is None else base), **values}
    token = _ENVIRON.set(merged)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


# --- the generated documentation ----------------------------------------------------------

def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return ""
    default = field.default
    if default is None or default == ():
        return ""
    if isinstance(default, Path):
        return f"`{default.as_posix().replace(Path.home().as_posix(), '~', 1)}`".replace(
            PROJECT_ROOT.as_posix(), "<project>")
    if isinstance(default, tuple):
        return ", ".join(f"`{_default_text_of(v)}`" for v in default)
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


def _default_text_of(value: Any) -> str:
    if isinstance(value, Path):
        return value.as_posix().replace(PROJECT_ROOT.as_posix(), "<project>")
    return str(value)


def _type_text(field: FieldInfo) -> str:
    text = repr(field.annotation) if not isinstance(field.annotation, type) else (
        field.annotation.__name__)
    text = text.replace("pathlib.", "").replace("pydantic.types.", "").replace("typing.", "")
    return text.replace("NoneType", "None").replace("|", "\\|")


def settings_markdown() -> str:
    """docs/settings.md: every setting, its variable, type, default and description."""
    lines = [
        "# Settings",
        "",
        "<!-- Generated by `python -m envforge.settings --markdown > docs/settings.md` from",
        "     envforge/settings.py; tests/unit/test_settings.py fails when this page is stale. -->",
        "",
        "envforge reads its settings from `ENVFORGE_*` environment variables in one place,",
        "`envforge/settings.py`. An empty variable counts as unset; a variable that does not",
        "parse stops the command or flow with one line naming it. Credentials belong in Prefect",
        "Blocks (`docs/blocks.md`); the few variables below that hold secrets are the fallbacks",
        "for machines without blocks.",
        "",
    ]
    for section_name, section in EnvforgeSettings.model_fields.items():
        model = section.annotation
        assert isinstance(model, type) and issubclass(model, Section)
        lines += [f"## {section_name}", "", (model.__doc__ or "").strip(), "",
                  "| variable | type | default | what it sets |", "|---|---|---|---|"]
        for field in model.model_fields.values():
            lines.append(f"| `{env_name(field)}` | {_type_text(field)} | "
                         f"{_default_text(field)} | {field.description} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m envforge.settings --markdown``: print docs/settings.md."""
    parser = argparse.ArgumentParser(prog="python -m envforge.settings",
                                     description="envforge's settings")
    parser.add_argument("--markdown", action="store_true",
                        help="print the settings table (docs/settings.md)")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(settings_markdown())
        return 0
    print(load_settings().model_dump_json(indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
