"""An environment's namespace is the run's environment's, never a scaffold parameter's:
a scaffold run with ``--set name=victim-env`` delivered into victim-env's namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.errors import SecretDeliveryError
from envforge.secrets.actions import VaultSecrets, VaultSecretsInput, check_delivery_namespace


def _ctx(tmp_path: Path, environment: dict[str, str], dry_run: bool = False) -> ActionContext:
    return ActionContext(run_id="r", step_id="secrets", template_name="scaffold",
                         template_dir=tmp_path, workspace=tmp_path, dry_run=dry_run,
                         environment=environment)


def test_a_scaffold_run_naming_another_environment_delivers_nothing(tmp_path: Path) -> None:
    params = VaultSecretsInput(environment="victim-env")
    with pytest.raises(SecretDeliveryError, match="belongs to no environment") as info:
        VaultSecrets().run(_ctx(tmp_path, {}), params)  # refused before Vault is read
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("wanted", [{"environment": "victim-env"},
                                    {"environment": "pr-1", "namespace": "victim-env"},
                                    {"environment": "pr-1", "namespace": "kube-system"}])
def test_an_environment_run_delivers_only_into_its_own_namespace(
        tmp_path: Path, wanted: dict[str, str]) -> None:
    with pytest.raises(SecretDeliveryError):
        check_delivery_namespace(_ctx(tmp_path, {"name": "pr-1"}),
                                 VaultSecretsInput(**wanted))  # type: ignore[arg-type]
    check_delivery_namespace(_ctx(tmp_path, {"name": "pr-1"}),
                             VaultSecretsInput(environment="pr-1"))


def test_a_dry_run_of_a_scaffold_still_renders(tmp_path: Path) -> None:
    check_delivery_namespace(_ctx(tmp_path, {}, dry_run=True),
                             VaultSecretsInput(environment="anything"))
