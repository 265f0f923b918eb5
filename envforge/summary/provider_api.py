"""One HTTP client shape for the GitHub and GitLab REST APIs: the comment and the status code
both talk through it, so headers, redirects and error mapping live in one place.

Redirects are not followed (the token must not travel elsewhere); every error names the
provider, method, path and status, never the token. A 5xx or no answer is a
ProviderUnreachableError (temporary); any other refusal is the caller's ``refused`` error.
"""

from __future__ import annotations

from typing import Any, Self

import httpx
from pydantic import SecretStr

from envforge.errors import ProviderUnreachableError, SummaryError
from envforge.secrets.redaction import scrub

DEFAULT_API_URLS = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}


def provider_http_client(provider: str, token: SecretStr, api_url: str | None = None,
                         timeout_seconds: float = 10.0,
                         transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx client for ``provider``'s REST API, authenticated the provider's way."""
    if provider not in DEFAULT_API_URLS:
        raise SummaryError(f"unknown git provider {provider!r}: use github or gitlab")
    headers = {"User-Agent": "envforge"}
    secret = token.get_secret_value()
    if provider == "github":
        headers |= {"Authorization": f"Bearer {secret}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": "2022-11-28"}
    else:
        headers |= {"PRIVATE-TOKEN": secret}
    return httpx.Client(base_url=(api_url or DEFAULT_API_URLS[provider]).rstrip("/"),
                        headers=headers, timeout=timeout_seconds, follow_redirects=False,
                        transport=transport)


class ProviderSession:
    """An open HTTP client for one provider's REST API (GitHub or GitLab), closed on exit:
    the base of the comment and the status clients, which differ only in the calls they make."""

    def __init__(self, provider: str, token: SecretStr, api_url: str | None = None,
                 timeout_seconds: float = 10.0, transport: httpx.BaseTransport | None = None
                 ) -> None:
        self.provider = provider
        self._client = provider_http_client(provider, token, api_url, timeout_seconds,
                                            transport)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def provider_request(client: httpx.Client, provider: str, method: str, path: str,
                     refused: type[SummaryError], **kwargs: Any) -> httpx.Response:
    """``method path`` on the provider; its answer, or an error that says what failed."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as e:
        raise ProviderUnreachableError(
            f"{provider} API at {client.base_url} did not answer {method} {path} "
            f"({type(e).__name__}); try again") from None
    if response.status_code >= 500:
        raise ProviderUnreachableError(
            f"{provider} API answered {response.status_code} to {method} {path}")
    if response.status_code >= 300:
        raise refused(
            f"{provider} API refused {method} {path}: {response.status_code} "
            f"{_reason(response)} (check the GitProviderToken block's token and scopes)")
    return response


def _reason(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return scrub(response.text[:200])
    message = data.get("message") if isinstance(data, dict) else None
    return scrub(str(message)[:200]) if message else ""
