"""The one error hierarchy of envforge.

Every error a user can see derives from :class:`EnvforgeError`; its message names the thing at
fault (template, step id, field path, file, table.column) and what to do about it, and never
contains a secret value. Third-party errors (git, psycopg, hvac, kubernetes) are wrapped at one
boundary with ``raise ... from e``.

    EnvforgeError
    ├── ConfigurationError           settings or blocks are missing or inconsistent
    ├── RetriesExhaustedError        a temporary error outlasted its attempts or time budget
    ├── TemplateError
    │   ├── TemplateNotFoundError    no template by that name or path
    │   ├── TemplateFormatError      malformed template.yaml (file and line)
    │   ├── ParameterError           parameters violate the schema (every violation, JSON path)
    │   └── ExpressionError          ${{ }} failed: undefined name, syntax, sandbox escape
    ├── ActionError
    │   ├── UnknownActionError       action id not registered (lists the available ones)
    │   ├── DuplicateActionError     two actions registered under one id
    │   ├── ActionInputError         rendered input does not fit the action's input model
    │   └── StepFailedError          a step failed during a run (step id, action, cause)
    ├── PathEscapeError              a path leaves the workspace or repository
    ├── PublishScopeError            a write outside the template's scope (step, targetPath)
    ├── CapabilityError              (envforge.capabilities) an action asked beyond what it holds
    │   ├── EgressRefusedError       URL not allowlisted, private address, credential elsewhere
    │   ├── EgressFailedError        (temporary) the allowed request got no usable answer
    │   ├── FileRefusedError         a write through a link, into .git, a bad name (file named)
    │   └── BudgetExceededError      bytes, time, entries, files, depth or items over the budget
    ├── GitError                     clone, commit or push failed
    │   ├── PushRejectedError        the remote refused the push
    │   ├── PushConflictError        (temporary) someone pushed first: sync, re-apply, retry
    │   ├── GitUnreachableError      (temporary) the remote did not answer (refused, reset,
    │   │                            timed out, a 5xx): core.git_boundary classifies git's output
    │   └── GitLockTimeoutError      the git cache lock stayed held past its bound
    └── SecretsError                 variables, Vault, secret delivery (never holds a value)
        ├── SecretReferenceError     malformed vault: reference, or one headed for Git
        ├── VariableError            bad variable definition or unknown reference
        │   └── VariableCycleError   variables refer to each other in a cycle (named)
        ├── VaultError               names the path and the auth method
        │   ├── VaultAuthError       login refused
        │   ├── VaultPermissionError 403 on a path
        │   ├── SecretNotFoundError  no such path, version or key
        │   ├── VaultSealedError     Vault is sealed
        │   └── VaultUnreachableError  (temporary) no answer from Vault
        └── SecretDeliveryError      the cluster refused a Secret/ConfigMap/namespace change
            └── ClusterUnreachableError  (temporary) = ClusterConnectionError, during delivery
    DatabaseError                    (envforge.db) names the server, database, table.column
    ├── DatabaseUnreachableError     (temporary) connection refused, timed out or dropped
    ├── RulesError                   bad rules file: unknown table/column, transformer misfit
    ├── PersonalDataError            strict mode: uncovered columns look like personal data
    ├── UnsafeTargetError            target is the source, or a database envforge did not create
    ├── CopyFailedError              a clone/seed/restore step failed (table named); target dropped
    └── SnapshotError                snapshot missing, unreadable or storage failed
    ImageError                       (envforge.images) names the repository, ref, step or registry
    ├── ImageSourceError             the application repository cannot be used
    │   ├── SourceUnreachableError   (temporary) clone/fetch failed: URL, network, credentials
    │   └── RefNotFoundError         no branch, tag, pull request head or commit by that name
    ├── DockerfileError              Dockerfile missing at the given path, or rendering failed
    │   └── UnknownStackError        stack not named/detected, or no template for it
    ├── ImageBuildFailedError        a Dockerfile step failed (step and its last output lines)
    └── RegistryError                the registry refused or failed a request
        ├── RegistryUnreachableError (temporary) no answer from the registry
        ├── RegistryAuthError        credentials missing or rejected (401/403)
        └── ImagePushError           the push failed for another reason
    GitOpsError                      (envforge.gitops) names the environment, file and field
    ├── EnvironmentNameError         not a DNS-1123 label, or too long for the derived names
    ├── EnvironmentExistsError       create of an environment that already exists
    ├── EnvironmentNotFoundError     update/extend/destroy/show of one that does not exist
    ├── EnvironmentLockTimeoutError  (temporary) another run held the environment too long
    ├── TTLError                     a TTL that does not parse or exceeds the maximum
    ├── ManifestValidationError      rendered manifests break the schema (file, object, field)
    ├── SecretInGitError             staged content holds a secret value or credential (file)
    └── DomainError                  a custom host cannot be bound (not a DNS name, generated)
        └── DomainConflictError      the host is bound to another environment (named)
    WebhookError                     (envforge.webhooks) names the provider, header or field
    ├── WebhookSignatureError        missing or wrong signature/token: 401, nothing starts
    ├── WebhookPayloadError          body is not JSON or lacks a field the event needs (400)
    ├── TemplateMappingError         the repository-to-template mapping file is malformed
    └── DispatchError                the Prefect deployment cannot be started (named)
        └── PrefectUnreachableError  (temporary) no answer from the Prefect API
    SummaryError                     (envforge.summary) artifact or pull-request comment
    ├── ProviderCommentError         the provider refused the comment (status, never the token)
    ├── ProviderStatusError          the provider refused a commit/deployment/environment status
    └── ProviderUnreachableError     (temporary) no answer from the provider's API
    ClusterError                     (envforge.cluster) names the environment, namespace, object
    ├── ClusterConnectionError       (temporary) the API server did not answer
    ├── ClusterAccessError           the API server refused the credentials (401/403)
    ├── ClusterApiError              the API server refused or failed a request
    │   ├── ClusterBusyError         (temporary) 429/5xx: rate limited or restarting
    │   └── NamespaceTerminatingError  (temporary) the namespace is still being deleted
    ├── WorkloadNotFoundError        no pod/container for logs or shell (lists what exists)
    ├── EnvironmentNotHealthyError   not Synced+Healthy+rolled out in time (what, diagnosis)
    └── EnvironmentNotPrunedError    after destroy, the Application or namespace remains

``TemporaryError`` is a marker mixed into errors that are safe to retry (a network hiccup, a
non-fast-forward race), with the wait its raiser asks for when it knows one (``retry_after``);
everything else is permanent and is never retried. Each temporary error is retried at one
layer: in-process by ``envforge.core.retry`` (git push races), or by Prefect's task retries (the
rest); when the in-process budget runs out it becomes a permanent ``RetriesExhaustedError``.

Outside the tree, :class:`Terminated` (a BaseException) is SIGTERM turned into an exception by
a command that must clean up on the way out (``envforge db clone``).
"""

from __future__ import annotations

from collections.abc import Sequence


class EnvforgeError(Exception):
    """Base of every error envforge raises on purpose."""


class TemporaryError(EnvforgeError):
    """Marker: the operation may succeed if retried unchanged (Prefect retries only these).
    ``retry_after``: the seconds the service asked to wait (Retry-After), when it said."""

    retry_after: float | None = None


class RetriesExhaustedError(EnvforgeError):
    """A temporary error outlasted its retry budget (attempts or time). Permanent: the budget
    was the retry, so no other layer retries it again (the last temporary error is its
    ``__cause__``)."""


class ConfigurationError(EnvforgeError):
    """A setting, block or environment variable is missing or inconsistent."""


class TemplateError(EnvforgeError):
    """Something is wrong with a template or with the values given to it."""


class TemplateNotFoundError(TemplateError):
    def __init__(self, name: str, available: Sequence[str], searched: Sequence[str]) -> None:
        self.name = name
        self.available = list(available)
        hint = ", ".join(self.available) if self.available else "none found"
        where = ", ".join(searched) if searched else "(no template directories configured)"
        super().__init__(
            f"unknown template {name!r}: available templates are {hint} "
            f"(searched {where}; give a path to a template directory to use another one)"
        )


class TemplateFormatError(TemplateError):
    def __init__(self, file: str, message: str, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")


class ParameterError(TemplateError):
    """Parameters violate the template's schema; ``violations`` holds (json_path, message)."""

    def __init__(self, template: str, violations: Sequence[tuple[str, str]]) -> None:
        self.template = template
        self.violations = list(violations)
        lines = "; ".join(f"{path}: {msg}" for path, msg in self.violations)
        super().__init__(
            f"template {template!r}: {len(self.violations)} parameter problem(s): {lines} "
            f"(see 'envforge templates show {template}' for the parameters it takes)"
        )


class ExpressionError(TemplateError):
    def __init__(self, where: str, expression: str, reason: str) -> None:
        self.where = where
        self.expression = expression
        self.reason = reason
        super().__init__(f"{where}: expression ${{{{ {expression} }}}} failed: {reason}")


class ActionError(EnvforgeError):
    """Something is wrong with an action or its input."""


class UnknownActionError(ActionError):
    def __init__(self, action_id: str, available: Sequence[str], step_id: str | None = None):
        self.action_id = action_id
        self.available = sorted(available)
        prefix = f"step {step_id!r}: " if step_id else ""
        super().__init__(
            f"{prefix}unknown action {action_id!r}; available actions: "
            f"{', '.join(self.available)}"
        )


class DuplicateActionError(ActionError):
    def __init__(self, action_id: str) -> None:
        super().__init__(f"an action with id {action_id!r} is already registered")


class ActionInputError(ActionError):
    def __init__(self, step_id: str, action_id: str, problems: Sequence[tuple[str, str]]):
        self.step_id = step_id
        self.action_id = action_id
        self.problems = list(problems)
        lines = "; ".join(f"input.{path}: {msg}" for path, msg in self.problems)
        super().__init__(f"step {step_id!r} ({action_id}): invalid input: {lines}")


class StepFailedError(ActionError):
    """A step failed during a run; completed steps were rolled back (``rolled_back``)."""

    def __init__(
        self,
        step_id: str,
        action_id: str,
        reason: str,
        rolled_back: Sequence[str] = (),
        rollback_failures: Sequence[str] = (),
    ) -> None:
        self.step_id = step_id
        self.action_id = action_id
        self.reason = reason
        self.rolled_back = list(rolled_back)
        self.rollback_failures = list(rollback_failures)
        msg = f"step {step_id!r} ({action_id}) failed: {reason}"
        if self.rolled_back:
            msg += f"; rolled back: {', '.join(self.rolled_back)}"
        if self.rollback_failures:
            msg += f"; ROLLBACK FAILED for: {'; '.join(self.rollback_failures)}"
        super().__init__(msg)


class PathEscapeError(EnvforgeError):
    def __init__(self, path: str, root_description: str, why: str = "") -> None:
        self.path = path
        detail = f" ({why})" if why else ""
        super().__init__(
            f"path {path!r} escapes the {root_description}{detail}: use a relative path "
            f"inside it without '..' or symbolic links leading out"
        )


class PublishScopeError(EnvforgeError):
    """A writing step targets a path outside its scope (``.git``, a shared folder, another
    environment's or service's path); nothing was written."""

    def __init__(self, step_id: str, action_id: str, target: str, why: str) -> None:
        self.step_id = step_id
        self.target = target
        super().__init__(
            f"step {step_id!r} ({action_id}): targetPath {target!r} is outside the template's "
            f"scope: {why}; a scaffold publishes under services/<name>/, an environment under "
            "environments/<its name>/ (see docs/security.md)")


class GitError(EnvforgeError):
    """A git operation failed; the message never contains credentials. ``output``: what git
    printed (credentials in URLs masked), for a caller that tells failures apart (the push)."""

    output: str = ""


class PushRejectedError(GitError):
    """The remote refused the push for a reason a retry will not fix."""


class PushConflictError(GitError, TemporaryError):
    """Someone else pushed first; fetching, rebasing and pushing again may succeed."""


class GitUnreachableError(GitError, TemporaryError):
    """The remote could not be reached or answered 5xx (connection refused or reset, a
    timeout, DNS); running again later may succeed. Auth, permission and not-found are not."""


class GitLockTimeoutError(GitError):
    """Another command held the git cache lock longer than the bound. Permanent on purpose:
    the bound is already the wait budget; a retry would wait it again."""


# --- secrets ---
class SecretsError(EnvforgeError):
    """Variables, Vault or secret delivery failed; messages name paths, never values."""


class SecretReferenceError(SecretsError):
    """A ``vault:`` reference is malformed, or a secret reference sits where Git would get it."""


class VariableError(SecretsError):
    """A variable definition is invalid or refers to a variable that does not exist."""


class VariableCycleError(VariableError):
    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__(
            f"variables refer to each other in a cycle: {' -> '.join(self.cycle)}; "
            "make one of them a literal or a secret reference"
        )


class VaultError(SecretsError):
    """Vault refused or failed a request; names the path and the auth method."""


class VaultAuthError(VaultError):
    """Logging in to Vault failed (bad token, role or credentials)."""


class VaultPermissionError(VaultError):
    """Vault answered 403: the token's policies do not allow the path."""


class SecretNotFoundError(VaultError):
    """No secret at the path, no such version, or no such key in it."""


class VaultSealedError(VaultError):
    """Vault is sealed; an operator must unseal it."""


class VaultUnreachableError(VaultError, TemporaryError):
    """Vault did not answer (connection refused, timeout, TLS failure)."""


class SecretDeliveryError(SecretsError):
    """The cluster refused a Secret, ConfigMap or namespace change."""


# --- databases ---
class DatabaseError(EnvforgeError):
    """A database operation failed; names server/database/table, never a password."""


class DatabaseUnreachableError(DatabaseError, TemporaryError):
    """The server did not answer, refused the login, or dropped the connection."""


class RulesError(DatabaseError):
    """The anonymisation rules do not fit the database (every problem listed)."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            f"{source}: {len(self.problems)} rule problem(s): " + "; ".join(self.problems)
        )


class PersonalDataError(DatabaseError):
    """Strict mode stopped a clone: columns without a rule look like personal data."""

    def __init__(self, findings: Sequence[str]) -> None:
        self.findings = list(findings)
        super().__init__(
            f"{len(self.findings)} column(s) look like personal data and have no rule: "
            + "; ".join(self.findings)
            + " (add a rule for each, or 'passthrough' once reviewed; see 'envforge db plan')"
        )


class UnsafeTargetError(DatabaseError):
    """envforge refuses to write into this database."""


class CopyFailedError(DatabaseError):
    """Copying, seeding or restoring failed; the target database was dropped."""


class SnapshotError(DatabaseError):
    """A snapshot is missing, unreadable, or its storage failed."""


# --- images ---
class ImageError(EnvforgeError):
    """Building or publishing an application image failed; never holds a credential."""


class ImageSourceError(ImageError):
    """The application repository or the requested ref cannot be used."""


class SourceUnreachableError(ImageSourceError, TemporaryError):
    """Cloning or fetching the application repository failed."""


class RefNotFoundError(ImageSourceError):
    """The repository has no branch, tag, pull request head or commit by that name."""


class DockerfileError(ImageError):
    """The Dockerfile is missing where it was said to be, or could not be rendered."""


class UnknownStackError(DockerfileError):
    """No stack template fits: the named stack is unknown, or none could be detected."""


class ImageBuildFailedError(ImageError):
    """A Dockerfile step failed; ``step`` names it and ``last_lines`` is its output tail."""

    def __init__(self, image: str, step: str | None, last_lines: Sequence[str]) -> None:
        self.image = image
        self.step = step
        self.last_lines = list(last_lines)
        where = f"at {step}" if step else "before the first Dockerfile step"
        tail = "\n    ".join(self.last_lines) or "(no output)"
        super().__init__(
            f"building {image} failed {where}; fix the Dockerfile or the code it builds. "
            f"Last lines:\n    {tail}"
        )


class RegistryError(ImageError):
    """The container registry refused or failed a request (names the registry, never a secret)."""


class RegistryUnreachableError(RegistryError, TemporaryError):
    """The registry did not answer (connection refused, timeout, TLS failure)."""


class RegistryAuthError(RegistryError):
    """The registry asked for credentials, or rejected the ones given."""


class ImagePushError(RegistryError):
    """Pushing the image failed for a reason other than reachability or credentials."""


# --- gitops ---
class GitOpsError(EnvforgeError):
    """An environment in the GitOps repository cannot be written or read as asked."""


class EnvironmentLockTimeoutError(GitOpsError, TemporaryError):
    """Another run held the environment (its Prefect concurrency limit) for longer than the
    wait allows (ENVFORGE_ENV_LOCK_TIMEOUT)."""


class EnvironmentNameError(GitOpsError):
    """The environment name is not a DNS-1123 label, or too long for the names derived from it."""


class EnvironmentExistsError(GitOpsError):
    """Create was asked for an environment that already exists."""


class EnvironmentNotFoundError(GitOpsError):
    """The environment named does not exist in the GitOps repository."""


class TTLError(GitOpsError):
    """A time-to-live that does not parse, is not positive, or exceeds the maximum."""


class ManifestValidationError(GitOpsError):
    """Rendered manifests break their schema; every problem names file, object and field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} manifest problem(s), nothing was committed: "
            + "; ".join(self.problems)
        )


class SecretInGitError(GitOpsError):
    """Staged content holds a secret value or an obvious credential; the commit was refused."""


class DomainError(GitOpsError):
    """A custom host cannot be bound: not a DNS name, or a name envforge generates itself."""


class DomainConflictError(DomainError):
    """The custom host is already bound to another environment; ``environment`` names it."""

    def __init__(self, host: str, environment: str, wanted_by: str) -> None:
        self.host = host
        self.environment = environment
        super().__init__(
            f"cannot bind {host!r} to environment {wanted_by!r}: it is already bound to "
            f"environment {environment!r} (run 'envforge env unbind-domain {environment} "
            f"{host}' first, or pick another host)")


# --- cluster ---
class ClusterError(EnvforgeError):
    """Reading an environment's state from its cluster failed; names environment and object."""


class ClusterConnectionError(ClusterError, TemporaryError):
    """The Kubernetes API server did not answer (refused, timed out, TLS failure)."""


class ClusterAccessError(ClusterError):
    """The API server refused the credentials or their permissions (401/403)."""


class ClusterApiError(ClusterError):
    """The API server refused or failed a request for another reason."""


class ClusterBusyError(ClusterApiError, TemporaryError):
    """The API server answered 429 or 5xx (rate limited, restarting): retried."""


class NamespaceTerminatingError(ClusterApiError, TemporaryError):
    """The namespace is still being deleted (an environment of that name was destroyed and
    Kubernetes is emptying it): nothing can be created in it until it is gone."""


class ClusterUnreachableError(SecretDeliveryError, ClusterConnectionError):
    """The API server did not answer while delivering a Secret: a ClusterConnectionError
    (one class for "no answer", envforge.cluster.api_errors maps it) that Secret delivery's
    callers also catch as a SecretDeliveryError."""


class WorkloadNotFoundError(ClusterError):
    """No pod or container matches what logs or shell asked for (names what exists)."""


class EnvironmentNotHealthyError(ClusterError):
    """The environment was not Synced, Healthy and rolled out before the timeout.

    Permanent on purpose: the wait's timeout is already the retry budget, and the run should
    roll back rather than wait the whole timeout again. ``problems`` lists what is unhealthy;
    ``diagnosis`` holds the failing pods' events and log tails (redacted)."""

    def __init__(self, environment: str, waited_seconds: float, problems: Sequence[str],
                 diagnosis: str) -> None:
        self.environment = environment
        self.problems = list(problems)
        self.diagnosis = diagnosis
        what = "; ".join(self.problems) or "no reason reported"
        message = (f"environment {environment!r} is not healthy after {waited_seconds:.0f}s: "
                   f"{what} (see 'envforge env status {environment}' and "
                   f"'envforge env logs {environment}')")
        if diagnosis:
            message += "\n" + diagnosis
        super().__init__(message)


class EnvironmentNotPrunedError(ClusterError):
    """After a destroy, Argo CD had not removed the Application or its namespace in time."""

    def __init__(self, environment: str, waited_seconds: float, remaining: Sequence[str]):
        self.environment = environment
        self.remaining = list(remaining)
        super().__init__(
            f"environment {environment!r} not pruned after {waited_seconds:.0f}s: "
            f"{'; '.join(self.remaining)} (check the Application's finalizer and that Argo "
            "CD's app-of-apps has synced the removal)")


# --- webhooks ---
class WebhookError(EnvforgeError):
    """A webhook request cannot be accepted; names the provider, header or field at fault."""


class WebhookSignatureError(WebhookError):
    """The request's signature or token is missing or wrong (never quotes either)."""

    def __init__(self, provider: str, reason: str) -> None:
        self.provider = provider
        super().__init__(f"{provider} webhook refused: {reason}")


class WebhookPayloadError(WebhookError):
    """The body is not JSON, or lacks a field the event needs (the field path is named)."""


class TemplateMappingError(WebhookError):
    """The repository-to-template mapping file cannot be read or is malformed (file named)."""


class DispatchError(WebhookError):
    """The Prefect deployment for an event cannot be started (deployment named)."""


class PrefectUnreachableError(DispatchError, TemporaryError):
    """The Prefect API did not answer."""


# --- summary ---
class SummaryError(EnvforgeError):
    """An environment summary could not be published as an artifact or a comment."""


class ProviderCommentError(SummaryError):
    """The Git provider refused the pull-request comment (status and URL, never the token)."""


class ProviderStatusError(SummaryError):
    """The Git provider refused a commit status, Deployment or environment update."""


class ProviderUnreachableError(SummaryError, TemporaryError):
    """The Git provider's API did not answer, or answered 429/5xx (``retry_after`` set from
    its Retry-After); raised by envforge.capabilities.providers for every provider call."""


# --- capabilities (envforge.capabilities) ---
class CapabilityError(EnvforgeError):
    """An action asked for more than the capability it was handed allows (one line, names
    the URL, file or budget and the setting that would allow it)."""


class EgressRefusedError(CapabilityError):
    """An outbound request was refused before it was sent (never carries a credential)."""


class EgressFailedError(CapabilityError, TemporaryError):
    """An allowed request did not get a usable answer (network error, status >= 400).
    ``unsent``: the connection never opened, so nothing reached the other side."""

    unsent: bool = False


class FileRefusedError(CapabilityError):
    """A workspace write was refused: a link on the way, ``.git``, a bad or too long name."""


class BudgetExceededError(CapabilityError):
    """A transfer or a run went over its byte, time, entry, file, depth or item budget."""


# --- outside the tree: not an error of envforge's, an order to stop ---
class Terminated(BaseException):
    """SIGTERM arrived (a cancelled flow run, a service manager, ``kill``) while a command ran
    with a handler that turns it into this: the ``finally`` blocks and context managers on
    the way out clean up (a target half made is dropped, temporary files removed). A
    BaseException, like KeyboardInterrupt, so ``except Exception`` does not swallow it; the
    CLI reports it in one line and exits 143 (128 + SIGTERM)."""
