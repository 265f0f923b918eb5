"""Git providers as the operator configured them, and the one client every provider call uses.

:class:`ProviderEndpoint` is one configured provider (GitHub, GitLab or Azure DevOps): which
repository host it serves, where its API and Git live, and the operator's token (a setting or
a ``GitProviderToken`` block). A step names a repository (``repoUrl:
github.com?owner=acme&repo=shop``); the host it names must be the configured provider's host,
and every request goes to the *configured* API and Git origins with the token bound to them.
A template never chooses where the token goes.

:class:`ProviderClient` is the one REST client of the publishers (``publish:*``,
``github:webhook``), the pull-request comment and the pull-request status: every request goes
through the egress capability (URL parsed, allowlisted on every redirect, the credential bound
to the API origin and never sent on a redirect, byte and time budgets). Errors, one mapping:

- 2xx: the answer; a 2xx that is not JSON where JSON was expected is a refusal (Azure DevOps
  answers a sign-in page with 203 when it does not take the token);
- 429, 500/502/503/504, GitHub's rate-limit 403 (``Retry-After`` or
  ``x-ratelimit-remaining: 0``) and no answer at all: a temporary
  :class:`~envforge.errors.ProviderUnreachableError` whose ``retry_after`` is the wait the
  provider asked for (``Retry-After``, in seconds or as a date; ``x-ratelimit-reset``).
  Retried *here*, by envforge.core.retry (the one retry layer: the actions calling this
  declare no retries of their own), within 3 attempts and 30 s; then a permanent
  :class:`~envforge.errors.RetriesExhaustedError` whose cause carries ``retry_after``, so no
  other layer retries it again. A dropped connection on a call that can be repeated is never
  turned into a refusal;
- a POST (not idempotent) is tried again only when the provider said it did not process it
  (429, rate-limit 403) or the connection never opened; a POST answered 5xx or cut off is
  not sent again (it may have been done) and is the caller's ``refused`` error, saying so;
- any other 4xx: the caller's ``refused`` error, naming provider, method, path, status and
  the provider's message, never the token;
- a refused URL or an exhausted budget (bytes, time): the caller's ``refused`` error with the
  capability's one-line reason.
"""

from __future__ import annotations

import base64
import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from envforge.capabilities.caches import token_id
from envforge.capabilities.egress import (
    AllowRule,
    Answer,
    Credential,
    EgressClient,
    EgressPolicy,
    ParsedUrl,
    TransferBudget,
    parse_url,
)
from envforge.core.git_boundary import header_for
from envforge.core.retry import RetryPolicy, retry_temporary
from envforge.errors import (
    ActionError,
    CapabilityError,
    ConfigurationError,
    EgressFailedError,
    EgressRefusedError,
    EnvforgeError,
    ProviderUnreachableError,
)

ProviderName = Literal["github", "gitlab", "azure"]
DEFAULT_HOSTS = {"github": "github.com", "gitlab": "gitlab.com", "azure": "dev.azure.com"}
#: the user name git sends with the token (Azure DevOps takes any non-empty one with a PAT)
GIT_USERS = {"github": "x-access-token", "gitlab": "oauth2", "azure": "envforge"}
#: what a provider API call may use unless the caller says otherwise
DEFAULT_BUDGET = TransferBudget(max_bytes=10 * 1024 * 1024, deadline_seconds=30.0,
                                max_redirects=3)
_TEMPORARY = {429, 500, 502, 503, 504}
_IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}


@dataclass(frozen=True)
class ProviderEndpoint:
    """One configured provider: which repository host it serves and where its API and Git
    live. ``token`` is the operator's (a setting or block); never from a template."""

    provider: str
    host: str
    api: ParsedUrl
    git: ParsedUrl
    token: str = field(default="", repr=False)
    #: owner/repo globs the operator's token may administer beyond what the run created
    #: (github:webhook); empty: only the run's own repositories
    admin_repositories: tuple[str, ...] = ()

    @classmethod
    def configure(cls, provider: str, host: str | None = None, api_url: str | None = None,
                  git_url: str | None = None, token: str | None = None,
                  admin_repositories: tuple[str, ...] = ()) -> ProviderEndpoint:
        """The endpoint from settings; defaults are the public services' (or the host's
        ``/api/v3`` for GitHub Enterprise, ``/api/v4`` for GitLab, the host itself for Azure
        DevOps Server)."""
        if provider not in DEFAULT_HOSTS:
            raise ConfigurationError(f"unknown git provider {provider!r}: use "
                                     + ", ".join(DEFAULT_HOSTS))
        host = (host or DEFAULT_HOSTS[provider]).lower().rstrip(".")
        if api_url is None:
            if provider == "github":
                api_url = ("https://api.github.com" if host == "github.com"
                           else f"https://{host}/api/v3")
            elif provider == "gitlab":
                api_url = f"https://{host}/api/v4"
            else:
                api_url = f"https://{host}"
        git_url = git_url or f"https://{host}"
        prefix = f"ENVFORGE_{provider.upper()}"
        try:
            api = parse_url(api_url.rstrip("/"))
        except EgressRefusedError as e:
            raise ConfigurationError(f"{prefix}_API_URL / _HOST: {e}") from None
        try:
            git = parse_url(git_url.rstrip("/"))
        except EgressRefusedError as e:
            raise ConfigurationError(f"{prefix}_GIT_URL / _HOST: {e}") from None
        return cls(provider, host, api, git, token or "", tuple(admin_repositories))

    @property
    def api_base(self) -> str:
        return str(self.api.url).rstrip("/")

    def rules(self) -> tuple[AllowRule, ...]:
        """The API and Git origins, allowed (privately too: the operator configured them)."""
        return (AllowRule(self.api.origin, tuple(s for s in self.api.segments if s), True),
                AllowRule(self.git.origin, tuple(s for s in self.git.segments if s), True))

    def credentials(self, token: str | None = None) -> tuple[Credential, ...]:
        """The token bound to the API origin, as the provider wants it."""
        secret = token or self.token
        if not secret:
            return ()
        if self.provider == "github":
            return (Credential.bearer(self.api.origin, secret, token_id(secret)),)
        if self.provider == "azure":  # a personal access token as Basic with no user name
            basic = base64.b64encode(f":{secret}".encode()).decode()
            return (Credential(self.api.origin, "Authorization", f"Basic {basic}",
                               token_id(secret)),)
        return (Credential.bearer(self.api.origin, secret, token_id(secret),
                                  header="PRIVATE-TOKEN", scheme=""),)

    def headers(self) -> dict[str, str]:
        """The headers every API call carries (no credential: that is bound to the origin)."""
        if self.provider == "github":
            return {"Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": "2022-11-28"}
        if self.provider == "azure":
            # without it Azure DevOps answers a refused token with a 203 sign-in page
            return {"Accept": "application/json", "X-TFS-FedAuthRedirect": "Suppress"}
        return {"Accept": "application/json"}

    def git_origin_allows(self, url: str) -> bool:
        """Whether a clone URL the API answered lies under the configured Git base."""
        try:
            parsed = parse_url(url)
        except EgressRefusedError:
            return False
        return AllowRule(self.git.origin, tuple(s for s in self.git.segments if s)
                         ).matches(parsed)


Providers = Mapping[str, ProviderEndpoint]


def retry_delay(answer: Answer, now: float | None = None) -> float | None:
    """The seconds ``answer`` asks to wait before trying again (``Retry-After`` in seconds or
    as an HTTP date, else GitHub's ``x-ratelimit-reset``), or None when it says nothing."""
    headers = {k.lower(): v for k, v in answer.headers.items()}
    raw = headers.get("retry-after", "").strip()
    now = time.time() if now is None else now
    if raw:
        if raw.isdigit():
            return float(raw)
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(0.0, when.timestamp() - now)
    reset = headers.get("x-ratelimit-reset", "").strip()
    if reset.isdigit() and headers.get("x-ratelimit-remaining", "").strip() == "0":
        return max(0.0, float(reset) - now)
    return None


def is_temporary(answer: Answer) -> bool:
    """429, 5xx (but 501) and GitHub's rate-limit 403 say "not now", not "no"."""
    if answer.status in _TEMPORARY:
        return True
    headers = {k.lower(): v for k, v in answer.headers.items()}
    return answer.status == 403 and ("retry-after" in headers
                                     or headers.get("x-ratelimit-remaining") == "0")


def _processed_maybe(answer: Answer) -> bool:
    """Whether the provider may have acted on a request it answered with ``answer``: a 5xx
    may come after the work was done; a 429 or a rate-limit 403 is a refusal to start."""
    return answer.status not in (429, 403)


class ProviderClient:
    """REST calls to one configured provider, through the egress capability.

    ``what`` starts every message (a step, "pull-request comment"); ``refused`` is the error
    class of a permanent refusal (ActionError for actions, ProviderCommentError, ...)."""

    def __init__(self, endpoint: ProviderEndpoint, policy: EgressPolicy,
                 token: str | None = None, *, what: str = "",
                 refused: type[EnvforgeError] = ActionError,
                 budget: TransferBudget | None = None, attempts: int = 3,
                 max_wait_seconds: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.endpoint = endpoint
        self.provider = endpoint.provider
        self.token = token or endpoint.token
        self.what = what or f"{endpoint.provider} API"
        self.refused = refused
        #: a 429/5xx answer or a dropped connection is tried again within this budget
        self.retry = RetryPolicy(max_attempts=max(1, attempts), max_seconds=max_wait_seconds,
                                 base_delay=0.5, max_delay=4.0)
        #: how the retry layer waits (a test hands a recorder)
        self.sleep = sleep
        self.base = endpoint.api_base
        # the provider's origins, nothing else (a template's allowlist does not widen it)
        scoped = EgressPolicy(endpoint.rules(), policy.budget, policy.resolver,
                              policy.transport, policy.user_agent)
        self.http: EgressClient = scoped.client(endpoint.credentials(self.token),
                                                budget or DEFAULT_BUDGET)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _hide(self, text: str) -> str:
        if self.token:
            text = text.replace(self.token, "***")
            for credential in self.http.credentials:
                text = text.replace(credential.value.split(" ", 1)[-1], "***")
        return text

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The API URL of ``path`` (relative to the configured base) with ``params``."""
        url = httpx.URL(self.base + path)
        if params:
            url = url.copy_merge_params({k: str(v) for k, v in params.items()})
        return str(url)

    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None,
                missing_ok: bool = False) -> Answer:
        """``method path`` under this module's retry policy (envforge.core.retry, the one
        retry layer); the answer (a 404 too when ``missing_ok``), or an error that says what
        failed."""
        url = self.url(path, params)
        shown = f"{method} {path}"
        return retry_temporary(
            lambda attempt: self._once(method, url, shown, json, missing_ok), self.retry,
            f"{self.what}: {self.provider} API {shown}",
            "the provider is busy or unreachable; run again later", sleep=self.sleep)

    def _once(self, method: str, url: str, shown: str, json: Any, missing_ok: bool
              ) -> Answer:
        """One attempt: the answer, a temporary ProviderUnreachableError (with the wait the
        provider asked for) to retry, or a permanent error."""
        try:
            answer = self.http.request(method, url, headers=self.endpoint.headers(), json=json)
        except EgressFailedError as e:
            reason = f"did not answer {shown} ({self._hide(str(e))})"
            if method in _IDEMPOTENT or e.unsent:
                raise self._unreachable(reason, None) from None
            raise self.refused(f"{self.what}: {self.provider} API {reason}; not sent again: it "
                               "may have been processed (check the provider, then run "
                               "again)") from None
        except CapabilityError as e:
            raise self.refused(f"{self.what}: {self._hide(str(e))}") from None
        if answer.status < 400 or (missing_ok and answer.status == 404):
            return answer
        if not is_temporary(answer):
            reason = self._hide(self._reason(answer))
            raise self.refused(
                f"{self.what}: {self.provider} API answered {answer.status} to {shown}"
                + (f": {reason}" if reason else "")
                + " (check the token, its scopes and the names in repoUrl)")
        if method not in _IDEMPOTENT and _processed_maybe(answer):
            raise self.refused(f"{self.what}: {self.provider} API answered {answer.status} to "
                               f"{shown}; not sent again: it may have been processed (check "
                               "the provider, then run again)")
        raise self._unreachable(f"answered {answer.status} to {shown}", retry_delay(answer))

    def call(self, method: str, path: str, *, json: Any = None,
             params: Mapping[str, Any] | None = None) -> Any:
        """``request`` and its JSON body ({} when empty)."""
        answer = self.request(method, path, json=json, params=params)
        return self.json_of(answer, f"{method} {path}")

    def json_of(self, answer: Answer, shown: str) -> Any:
        try:
            return answer.json()
        except ValueError:
            raise self.refused(
                f"{self.what}: {self.provider} API answered {shown} with {answer.status} "
                "and a body that is not JSON (a sign-in page? check the token)") from None

    def _unreachable(self, text: str, delay: float | None) -> ProviderUnreachableError:
        error = ProviderUnreachableError(f"{self.provider} API at {self.base} {text}")
        error.retry_after = delay
        return error

    @staticmethod
    def _reason(answer: Answer) -> str:
        try:
            data = answer.json()
        except ValueError:
            return ""
        if not isinstance(data, dict):
            return ""
        message = data.get("message") or data.get("error")
        if isinstance(message, dict):  # GitLab's {"message": {"name": ["has already ..."]}}
            message = json.dumps(message)[:200]
        details = []  # GitHub's 422: {"message": "Validation Failed", "errors": [{...}]}
        for item in data.get("errors") or []:
            if isinstance(item, dict):
                details.append(str(item.get("message") or " ".join(
                    str(item.get(k, "")) for k in ("field", "code")).strip()))
            elif isinstance(item, str):
                details.append(item)
        text = "; ".join([str(message)] * bool(message) + [d for d in details if d])
        return text[:300]

    # --- git, under the configured Git origin ------------------------------------------------

    def git_config(self) -> list[tuple[str, str]]:
        """git settings sending the token to the configured Git origin only."""
        user = GIT_USERS.get(self.provider, "git")
        basic = base64.b64encode(f"{user}:{self.token}".encode()).decode()
        return header_for(str(self.endpoint.git.origin), f"Authorization: Basic {basic}")

    def check_clone_url(self, url: str) -> str:
        """``url`` without any user name (Azure DevOps answers ``https://org@host/...``) if
        it lies under the configured Git base, else refused."""
        try:
            plain = str(httpx.URL(url).copy_with(username=None, password=None))
        except (httpx.InvalidURL, ValueError, TypeError):
            plain = ""
        if not plain or not self.endpoint.git_origin_allows(plain):
            raise self.refused(
                f"{self.what}: the {self.provider} API answered a clone URL outside the "
                f"configured Git base {self.endpoint.git.url} "
                f"(ENVFORGE_{self.provider.upper()}_GIT_URL); not pushing there")
        return plain


def provider_client(endpoint: ProviderEndpoint, policy: EgressPolicy, token: str | None,
                    what: str, refused: type[EnvforgeError] = ActionError,
                    timeout_seconds: float | None = None) -> ProviderClient:
    """A client for ``endpoint``, refusing at once when there is no token to send."""
    secret = token or endpoint.token
    if not secret:
        raise ConfigurationError(
            f"{what}: no {endpoint.provider} token: give the step a 'token' input, set "
            f"ENVFORGE_{endpoint.provider.upper()}_TOKEN or use a GitProviderToken block")
    budget = None
    if timeout_seconds is not None:
        budget = TransferBudget(DEFAULT_BUDGET.max_bytes, timeout_seconds,
                                DEFAULT_BUDGET.max_redirects)
    return ProviderClient(endpoint, policy, secret, what=what, refused=refused, budget=budget)
