"""Variable scopes, references, cycles and secret propagation."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.errors import SecretsError, VariableCycleError, VariableError
from envforge.secrets.references import SecretReference
from envforge.secrets.variables import (
    Scope,
    SensitiveText,
    VariableSources,
    load_project_file,
    resolve_variables,
)

PROJECT = {
    "variables": {"LOG_LEVEL": "info", "REPLICAS": 1, "DB_HOST": "db.project"},
    "types": {"preview": {"LOG_LEVEL": "debug"}, "staging": {"REPLICAS": 3}},
    "environments": {"pr-7": {"LOG_LEVEL": "trace"}},
}


def sources(**kwargs: object) -> VariableSources:
    base: dict[str, object] = {
        "builtins": {"ENV_NAME": "pr-7", "DATABASE_URL": "postgres://u:pw-123@h/db"},
        "sensitive_builtins": frozenset({"DATABASE_URL"}),
        "template": {"LOG_LEVEL": "warning", "DB_HOST": "db.template", "FEATURE": True},
        "project": PROJECT,
        "environment_type": "preview",
        "environment_name": "pr-8",
    }
    base.update(kwargs)
    return VariableSources(**base)  # type: ignore[arg-type]


def test_narrower_scope_wins_and_the_losers_are_kept() -> None:
    resolved = resolve_variables(sources())
    assert resolved["LOG_LEVEL"].literal_value() == "debug"
    assert resolved["LOG_LEVEL"].winner.scope is Scope.TYPE
    assert [d.scope for d in resolved["LOG_LEVEL"].shadowed] == [Scope.TEMPLATE, Scope.PROJECT]
    assert resolved["DB_HOST"].literal_value() == "db.project"
    assert resolved["FEATURE"].literal_value() == "true"
    assert resolved["REPLICAS"].literal_value() == "1"
    assert resolved["ENV_NAME"].winner.scope is Scope.BUILTIN


def test_environment_scope_beats_type_and_overrides_beat_the_file() -> None:
    resolved = resolve_variables(sources(environment_name="pr-7"))
    assert resolved["LOG_LEVEL"].literal_value() == "trace"
    resolved = resolve_variables(sources(environment_name="pr-7",
                                         overrides={"LOG_LEVEL": "error"}))
    assert resolved["LOG_LEVEL"].literal_value() == "error"
    assert resolved["LOG_LEVEL"].winner.source == "environment overrides"


def test_type_scope_follows_the_environment_type() -> None:
    resolved = resolve_variables(sources(environment_type="staging"))
    assert resolved["REPLICAS"].literal_value() == "3"
    assert resolved["LOG_LEVEL"].literal_value() == "info"


def test_references_expand_inside_text() -> None:
    resolved = resolve_variables(sources(overrides={
        "DB_URL": "postgres://${{ vars.DB_HOST }}:5432/${{vars.ENV_NAME}}"}))
    assert resolved["DB_URL"].literal_value() == "postgres://db.project:5432/pr-7"


def test_secret_references_make_the_variable_and_its_users_secret() -> None:
    resolved = resolve_variables(sources(overrides={
        "DB_PASSWORD": "vault:kv/app/db#password@2",
        "DSN": "postgres://app:${{ vars.DB_PASSWORD }}@${{ vars.DB_HOST }}/app",
    }))
    password = resolved["DB_PASSWORD"]
    assert password.secret
    assert password.references == (SecretReference("kv", "app/db", "password", 2),)
    dsn = resolved["DSN"]
    assert dsn.secret and dsn.from_vault_only
    assert dsn.masked() == "postgres://app:<vault:kv/app/db#password@2>@db.project/app"
    assert dsn.value(lambda ref: "s3cr3t") == "postgres://app:s3cr3t@db.project/app"
    with pytest.raises(VariableError, match="is secret"):
        dsn.literal_value()


def test_sensitive_builtins_are_secret_but_not_from_vault() -> None:
    resolved = resolve_variables(sources())
    url = resolved["DATABASE_URL"]
    assert url.secret and not url.from_vault_only
    assert url.parts == (SensitiveText("postgres://u:pw-123@h/db", "DATABASE_URL"),)
    assert "pw-123" not in url.masked()


def test_a_cycle_is_refused_and_named() -> None:
    with pytest.raises(VariableCycleError) as info:
        resolve_variables(sources(overrides={
            "A": "${{ vars.B }}", "B": "x-${{ vars.C }}", "C": "${{ vars.A }}"}))
    assert info.value.cycle == ["A", "B", "C", "A"]
    assert "A -> B -> C -> A" in str(info.value)


def test_a_self_reference_is_a_cycle() -> None:
    with pytest.raises(VariableCycleError, match="SELF -> SELF"):
        resolve_variables(sources(overrides={"SELF": "${{ vars.SELF }}"}))


def test_unknown_reference_names_the_variable_and_the_missing_name() -> None:
    with pytest.raises(VariableError) as info:
        resolve_variables(sources(overrides={"URL": "http://${{ vars.HOSTNAME }}"}))
    assert "URL" in str(info.value) and "HOSTNAME" in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"X": "${{ parameters.name }}"}, "not allowed in a variable value"),
        ({"X": ["a", "b"]}, "must be a string, number or boolean"),
        ({"1BAD": "x"}, "variable name '1BAD'"),
        ({"X": "vault:kv/nokey"}, "not a valid secret reference"),
    ],
)
def test_bad_values_are_refused_with_the_reason(
    overrides: dict[str, object], fragment: str
) -> None:
    with pytest.raises(SecretsError) as info:
        resolve_variables(sources(overrides=overrides))
    assert fragment in str(info.value)


def test_unknown_environment_type_is_refused() -> None:
    with pytest.raises(VariableError, match="preview, development, staging"):
        resolve_variables(sources(environment_type="prod"))


def test_project_file_shape_is_checked(tmp_path: Path) -> None:
    good = tmp_path / "vars.yaml"
    good.write_text("variables: {A: 1}\ntypes: {preview: {A: 2}}\n")
    assert load_project_file(good)["types"] == {"preview": {"A": 2}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("variable: {A: 1}\n")
    with pytest.raises(VariableError, match="variables, types, environments"):
        load_project_file(bad)
    bad.write_text("types: {prod: {A: 1}}\n")
    with pytest.raises(VariableError, match="unknown environment type"):
        load_project_file(bad)
    with pytest.raises(VariableError, match="cannot read"):
        load_project_file(tmp_path / "missing.yaml")
