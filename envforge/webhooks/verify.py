"""Checking that a webhook request really comes from the Git provider, before reading it.

GitHub signs the raw body with HMAC-SHA256 under the webhook's secret (``X-Hub-Signature-256:
sha256=<hex>``); GitLab sends the configured secret token back verbatim (``X-Gitlab-Token``).
Both comparisons are constant-time, so response timing tells an attacker nothing about how
much of a guess was right. Messages never contain the secret or the signature received.
"""

from __future__ import annotations

import hashlib
import hmac

from envforge.errors import WebhookSignatureError

GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
GITLAB_TOKEN_HEADER = "X-Gitlab-Token"
_SHA256_PREFIX = "sha256="


def github_signature(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body`` (also used by tests)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return _SHA256_PREFIX + digest


def verify_github_signature(body: bytes, header: str | None, secret: str) -> None:
    """Raise WebhookSignatureError unless ``header`` is the HMAC-SHA256 of ``body``."""
    if not secret:
        raise WebhookSignatureError("github", "no webhook secret is configured on this server")
    if not header:
        raise WebhookSignatureError("github", f"the request has no {GITHUB_SIGNATURE_HEADER}"
                                    " header (set a secret on the GitHub webhook)")
    if not header.startswith(_SHA256_PREFIX):
        raise WebhookSignatureError("github", f"{GITHUB_SIGNATURE_HEADER} is not 'sha256=<hex>'")
    expected = github_signature(body, secret).encode("ascii")
    # compare_digest on bytes: constant time in the length of the expected value.
    if not hmac.compare_digest(expected, header.strip().encode("utf-8", "replace")):
        raise WebhookSignatureError("github", f"{GITHUB_SIGNATURE_HEADER} does not match the "
                                    "body (is the webhook's secret the same as this server's?)")


def verify_gitlab_token(header: str | None, expected: str) -> None:
    """Raise WebhookSignatureError unless ``header`` equals the configured GitLab token."""
    if not expected:
        raise WebhookSignatureError("gitlab", "no webhook token is configured on this server")
    if not header:
        raise WebhookSignatureError("gitlab", f"the request has no {GITLAB_TOKEN_HEADER} header"
                                    " (set a secret token on the GitLab webhook)")
    if not hmac.compare_digest(expected.encode("utf-8"), header.encode("utf-8", "replace")):
        raise WebhookSignatureError("gitlab", f"{GITLAB_TOKEN_HEADER} does not match this "
                                    "server's token")
