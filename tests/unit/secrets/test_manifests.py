"""Git-bound manifests: the ConfigMap refuses secrets, the ExternalSecret maps Vault fields,
and no file holding a registered value is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from envforge.errors import SecretReferenceError
from envforge.secrets.manifests import render_config_map, render_external_secret, write_manifests
from envforge.secrets.redaction import SecretRedactor
from envforge.secrets.variables import ResolvedVariable, VariableSources, resolve_variables

VARIABLES = resolve_variables(VariableSources(
    builtins={"DATABASE_URL": "postgres://u:pw@h/db", "ENV_NAME": "pr-1"},
    sensitive_builtins=frozenset({"DATABASE_URL"}),
    template={"LOG_LEVEL": "info", "PASSWORD": "vault:kv/app/db#password@3",
              "TOKEN": "vault:kv/app/api#token",
              "DSN": "postgres://app:${{ vars.PASSWORD }}@db/{{x}}"},
    environment_name="pr-1"))


def pick(*names: str) -> dict[str, ResolvedVariable]:
    return {n: VARIABLES[n] for n in names}


def test_config_map_holds_literal_values_with_environment_labels() -> None:
    cm = render_config_map("pr-1-config", "pr-1", "pr-1", pick("LOG_LEVEL", "ENV_NAME"))
    assert cm["data"] == {"ENV_NAME": "pr-1", "LOG_LEVEL": "info"}
    assert cm["metadata"]["labels"]["envforge.dev/environment"] == "pr-1"


def test_config_map_refuses_a_secret_variable_by_name() -> None:
    with pytest.raises(SecretReferenceError, match="PASSWORD are secret"):
        render_config_map("c", "ns", "pr-1", pick("LOG_LEVEL", "PASSWORD"))


def test_external_secret_maps_fields_versions_and_templates() -> None:
    es = render_external_secret("pr-1-secrets", "pr-1", "pr-1",
                                pick("PASSWORD", "TOKEN", "DSN"), "vault")
    spec = es["spec"]
    assert spec["secretStoreRef"] == {"name": "vault", "kind": "ClusterSecretStore"}
    assert spec["data"] == [
        {"secretKey": "PASSWORD",
         "remoteRef": {"key": "kv/app/db", "property": "password", "version": "3"}},
        {"secretKey": "TOKEN", "remoteRef": {"key": "kv/app/api", "property": "token"}},
    ]
    template = spec["target"]["template"]["data"]
    assert template["DSN"] == 'postgres://app:{{ .PASSWORD }}@db/{{ "{{" }}x}}'
    assert template["TOKEN"] == "{{ .TOKEN }}"


def test_external_secret_without_derived_values_needs_no_template() -> None:
    es = render_external_secret("s", "ns", "pr-1", pick("TOKEN"), "vault")
    assert "template" not in es["spec"]["target"]


def test_external_secret_refuses_values_not_in_vault() -> None:
    with pytest.raises(SecretReferenceError, match="DATABASE_URL"):
        render_external_secret("s", "ns", "pr-1", pick("DATABASE_URL"), "vault")


def test_write_manifests_refuses_a_file_with_a_registered_value(tmp_path: Path) -> None:
    redactor = SecretRedactor()
    redactor.register("leaky-value-123")
    ok = {"kind": "ConfigMap", "data": {"A": "fine"}}
    bad = {"kind": "ConfigMap", "data": {"A": "has leaky-value-123 in it"}}
    with pytest.raises(SecretReferenceError, match=r"bad\.yaml would contain a secret value"):
        write_manifests([("ok.yaml", ok), ("bad.yaml", bad)], tmp_path / "m", redactor)
    assert not (tmp_path / "m").exists()  # all or nothing
    [path] = write_manifests([("ok.yaml", ok)], tmp_path / "m", redactor)
    assert yaml.safe_load(path.read_text()) == ok
