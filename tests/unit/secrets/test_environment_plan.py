"""Planning where each variable goes, and the in-memory, bounded keeping of fetched values."""

from __future__ import annotations

import pytest

from envforge.errors import SecretDeliveryError
from envforge.secrets import environment
from envforge.secrets.environment import (
    FetchedSecrets,
    fetch_secrets,
    forget_run,
    plan_environment_secrets,
    recall_run,
    remember_run,
)
from envforge.secrets.variables import VariableSources

SOURCES = VariableSources(
    builtins={"DATABASE_URL": "postgres://u:plan-pw-1@h/db"},
    sensitive_builtins=frozenset({"DATABASE_URL"}),
    template={"LOG_LEVEL": "info", "PW": "vault:kv/app/db#password"},
    environment_name="pr-3")


def test_plan_routes_variables_and_its_summary_holds_no_value() -> None:
    plan = plan_environment_secrets(SOURCES)
    summary = plan.summary()
    assert summary["configKeys"] == ["LOG_LEVEL"]
    assert summary["secretKeys"] == ["DATABASE_URL", "PW"]
    assert summary["secretName"] == "pr-3-secrets" and summary["namespace"] == "pr-3"
    assert "plan-pw-1" not in repr(summary)
    eso = plan_environment_secrets(SOURCES, delivery="external-secrets")
    assert sorted(eso.eso_variables) == ["PW"]
    assert sorted(eso.direct_variables) == ["DATABASE_URL"]
    assert eso.direct_secret_name == "pr-3-secrets-envforge"


def test_fetching_without_vault_names_what_needs_it() -> None:
    with pytest.raises(SecretDeliveryError, match="variables PW need Vault"):
        fetch_secrets(plan_environment_secrets(SOURCES), reader=None)
    eso = fetch_secrets(plan_environment_secrets(SOURCES, delivery="external-secrets"), None)
    assert eso.values == {"DATABASE_URL": "postgres://u:plan-pw-1@h/db"}
    assert "plan-pw-1" not in repr(eso)


def test_values_are_forgotten_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "MAX_REMEMBERED", 2)
    plan = plan_environment_secrets(SOURCES)
    kept = [FetchedSecrets(plan, {"K": f"v{i}"}) for i in range(3)]
    for i, fetched in enumerate(kept):
        remember_run(f"run-{i}", "secrets", fetched)
    assert recall_run("run-0", "secrets") is None and kept[0].values == {}  # oldest dropped
    assert recall_run("run-2", "secrets") is kept[2]
    forget_run("run-2")
    assert recall_run("run-2", "secrets") is None and kept[2].values == {}
    forget_run("run-1")
