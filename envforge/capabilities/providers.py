"""Git providers as the operator configured them: host, API base, Git base and token.

A publishing step names a repository (``repoUrl: github.com?owner=acme&repo=shop``); the host it
names must be the configured provider's host, and every request goes to the *configured* API
and Git origins with the token bound to them. A template never chooses where the token goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from envforge.capabilities.caches import token_id
from envforge.capabilities.egress import AllowRule, Credential, ParsedUrl, parse_url
from envforge.errors import ConfigurationError, EgressRefusedError

DEFAULT_HOSTS = {"github": "github.com", "gitlab": "gitlab.com"}


@dataclass(frozen=True)
class ProviderEndpoint:
    """One configured provider: which repository host it serves and where its API and Git
    live. ``token`` is the operator's (a setting or block); never from a template."""

    provider: str
    host: str
    api: ParsedUrl
    git: ParsedUrl
    token: str = field(default="", repr=False)

    @classmethod
    def configure(cls, provider: str, host: str | None = None, api_url: str | None = None,
                  git_url: str | None = None, token: str | None = None) -> ProviderEndpoint:
        """The endpoint from settings; defaults are the public services' (or the host's
        ``/api/v3`` for GitHub Enterprise, ``/api/v4`` for GitLab)."""
        host = (host or DEFAULT_HOSTS[provider]).lower().rstrip(".")
        if api_url is None:
            if provider == "github":
                api_url = ("https://api.github.com" if host == "github.com"
                           else f"https://{host}/api/v3")
            else:
                api_url = f"https://{host}/api/v4"
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
        return cls(provider, host, api, git, token or "")

    @property
    def api_base(self) -> str:
        return str(self.api.url).rstrip("/")

    def rules(self) -> tuple[AllowRule, ...]:
        """The API and Git origins, allowed (privately too: the operator configured them)."""
        return (AllowRule(self.api.origin, tuple(s for s in self.api.segments if s), True),
                AllowRule(self.git.origin, tuple(s for s in self.git.segments if s), True))

    def credentials(self, token: str | None = None) -> tuple[Credential, ...]:
        """The token bound to the API origin (and the Git origin for git's header)."""
        secret = token or self.token
        if not secret:
            return ()
        if self.provider == "github":
            return (Credential.bearer(self.api.origin, secret, token_id(secret)),)
        return (Credential.bearer(self.api.origin, secret, token_id(secret),
                                  header="PRIVATE-TOKEN", scheme=""),)

    def git_origin_allows(self, url: str) -> bool:
        """Whether a clone URL the API answered lies under the configured Git base."""
        try:
            parsed = parse_url(url)
        except EgressRefusedError:
            return False
        return AllowRule(self.git.origin, tuple(s for s in self.git.segments if s)
                         ).matches(parsed)


Providers = Mapping[str, ProviderEndpoint]
