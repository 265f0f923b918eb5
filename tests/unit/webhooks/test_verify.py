from __future__ import annotations

import pytest

from envforge.errors import WebhookSignatureError
from envforge.webhooks.verify import github_signature, verify_github_signature, verify_gitlab_token

SECRET = "It's a Secret to Everybody"


def test_github_signature_matches_githubs_documented_example() -> None:
    # The example from GitHub's "Validating webhook deliveries" documentation.
    assert github_signature(b"Hello, World!", SECRET) == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_valid_github_signature_passes() -> None:
    body = b'{"action": "opened"}'
    verify_github_signature(body, github_signature(body, SECRET), SECRET)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "no X-Hub-Signature-256"),
        ("", "no X-Hub-Signature-256"),
        ("sha1=abc", "is not 'sha256=<hex>'"),
        ("sha256=" + "0" * 64, "does not match"),
        ("sha256=zz", "does not match"),
    ],
)
def test_missing_or_wrong_github_signature_is_refused(header: str | None, expected: str) -> None:
    with pytest.raises(WebhookSignatureError, match=expected) as info:
        verify_github_signature(b"{}", header, SECRET)
    assert SECRET not in str(info.value)


def test_signature_of_another_body_is_refused() -> None:
    signature = github_signature(b'{"number": 1}', SECRET)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_github_signature(b'{"number": 2}', signature, SECRET)


def test_signature_made_with_another_secret_is_refused() -> None:
    body = b"{}"
    with pytest.raises(WebhookSignatureError):
        verify_github_signature(body, github_signature(body, "other"), SECRET)


def test_github_without_configured_secret_refuses_everything() -> None:
    body = b"{}"
    with pytest.raises(WebhookSignatureError, match="no webhook secret is configured"):
        verify_github_signature(body, github_signature(body, ""), "")


def test_gitlab_token() -> None:
    verify_gitlab_token("tok-123", "tok-123")
    for wrong in (None, "", "tok-12", "tok-1234", "TOK-123"):
        with pytest.raises(WebhookSignatureError) as info:
            verify_gitlab_token(wrong, "tok-123")
        assert "tok-123" not in str(info.value)
    with pytest.raises(WebhookSignatureError, match="no webhook token is configured"):
        verify_gitlab_token("anything", "")


def test_non_ascii_header_is_refused_not_crashing() -> None:
    with pytest.raises(WebhookSignatureError):
        verify_github_signature(b"{}", "sha256=é", SECRET)
    with pytest.raises(WebhookSignatureError):
        verify_gitlab_token("é", SECRET)
