"""Parsing vault: references and refusing them in fields bound for Git."""

from __future__ import annotations

import pytest

from envforge.errors import SecretReferenceError
from envforge.secrets.references import (
    SecretReference,
    find_references,
    parse_reference,
    refuse_references_in_git_fields,
)


def test_full_reference_with_version() -> None:
    ref = parse_reference("vault:kv/app/db#password@3")
    assert ref == SecretReference("kv", "app/db", "password", 3)
    assert ref.location == "kv/app/db@3"
    assert str(ref) == "vault:kv/app/db#password@3"


def test_reference_without_version_reads_latest() -> None:
    ref = parse_reference("  vault:secret/team-a/api.keys#token ")
    assert (ref.mount, ref.path, ref.key) == ("secret", "team-a/api.keys", "token")
    assert ref.version is None


@pytest.mark.parametrize(
    "text",
    [
        "vault:kv/app/db",  # no key
        "vault:kv#password",  # no path inside the mount
        "vault:kv/app/db#",  # empty key
        "vault:kv/app/db#password@x",
        "vault:kv//db#password",
        "vault:/kv/app#k",
        "kv/app/db#password",
    ],
)
def test_malformed_references_name_the_field_and_the_form(text: str) -> None:
    with pytest.raises(SecretReferenceError) as info:
        parse_reference(text, where="spec.variables.DB_PASSWORD")
    message = str(info.value)
    assert "spec.variables.DB_PASSWORD" in message
    assert "vault:<mount>/<path>#<key>" in message


def test_dot_dot_and_version_zero_are_refused() -> None:
    with pytest.raises(SecretReferenceError, match="not a valid secret reference"):
        parse_reference("vault:kv/app/../root#k")
    with pytest.raises(SecretReferenceError, match="versions start at 1"):
        parse_reference("vault:kv/app#k@0")


class _SecretRefLike:
    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return f"secret:{self.name}"


def test_find_references_walks_nested_values() -> None:
    value = {"a": ["ok", "password is vault:kv/x#y"], "b": {"c": _SecretRefLike("TOKEN")}, "d": 3}
    assert find_references(value, "input.values") == [
        ("input.values.a[1]", "password is vault:kv/x#y"),
        ("input.values.b.c", "secret:TOKEN"),
    ]


def test_secret_reference_in_a_git_field_is_refused_naming_the_field() -> None:
    refuse_references_in_git_fields({"name": "app", "replicas": 2}, "input.values")
    with pytest.raises(SecretReferenceError) as info:
        refuse_references_in_git_fields({"dsn": "vault:kv/app/db#url"}, "input.values")
    assert "input.values.dsn" in str(info.value)
    assert "end up in Git" in str(info.value)
