import re

import pytest

from envforge.errors import TemplateError
from envforge.templating.filters import dns_label, parse_repo_url, pick, project_slug

RFC1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("My App", "my-app"),
        ("feature/JIRA-123_add login", "feature-jira-123-add-login"),
        ("Überprüfung", "uberprufung"),
        ("--a--b--", "a-b"),
        ("already-ok", "already-ok"),
    ],
)
def test_dns_label_examples(raw: str, expected: str) -> None:
    assert dns_label(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "---", "日本語", "x" * 200, "a" * 62 + "-b", "-leading", "UPPER_lower.dot", "9lives"]
)
def test_dns_label_is_always_a_valid_label(raw: str) -> None:
    label = dns_label(raw)
    assert RFC1123.match(label), label
    assert len(label) <= 63


def test_dns_label_keeps_long_inputs_apart() -> None:
    a = dns_label("feature-" + "x" * 100 + "-one")
    b = dns_label("feature-" + "x" * 100 + "-two")
    assert a != b and len(a) <= 63 and len(b) <= 63


def test_dns_label_honours_a_shorter_limit() -> None:
    assert len(dns_label("a very long branch name for a preview", 20)) <= 20


def test_parse_repo_url_backstage_format() -> None:
    assert parse_repo_url("github.com?owner=acme&repo=shop") == {
        "host": "github.com", "owner": "acme", "repo": "shop",
    }
    assert project_slug("github.com?owner=acme&repo=shop") == "acme/shop"
    # Backstage's projectSlug is `${owner}/${repo}`: no owner gives "undefined"
    assert project_slug("bitbucket.org?workspace=ws&project=p&repo=r") == "undefined/r"
    assert parse_repo_url("bitbucket.org?workspace=ws&project=p&repo=r") == {
        "host": "bitbucket.org", "repo": "r", "workspace": "ws", "project": "p"}


def test_parse_repo_url_rejects_other_shapes() -> None:
    with pytest.raises(TemplateError, match="missing repo"):
        parse_repo_url("https://github.com/acme/shop")
    with pytest.raises(TemplateError, match="missing owner"):
        parse_repo_url("github.com?repo=shop")


def test_pick() -> None:
    assert pick({"a": 1, "b": 2}, "b") == 2
    assert pick({"a": {"b": [5, 6]}}, "a.b[1]") == 6  # lodash get: a path
    with pytest.raises(TemplateError, match="is not in the value"):
        pick([1], "a")
