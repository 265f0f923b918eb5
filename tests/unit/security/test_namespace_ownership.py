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


@pytest.mark.parametrize("environment,wanted", [
    ({}, {"environment": "victim-env"}),  # a scaffold run: no namespace of its own
    ({"name": "pr-1"}, {"environment": "victim-env"}),
    ({"name": "pr-1"}, {"environment": "pr-1", "namespace": "victim-env"}),
])
def test_a_database_container_goes_only_into_the_runs_own_namespace(
        tmp_path: Path, environment: dict[str, str], wanted: dict[str, str]) -> None:
    """db:container writes a password Secret: the same rule as secrets, before any image check,
    seed or cluster call (a template's inputs never choose another environment's namespace)."""
    from envforge.db.container_action import DatabaseContainer, DatabaseContainerInput
    from envforge.errors import DatabaseError

    params = DatabaseContainerInput(image="127.0.0.1:9/base/postgres:15",  # nothing answers
                                    **wanted)  # type: ignore[arg-type]
    refused = ("belongs to no environment|is not this run's environment|"
               "not the environment's own namespace")
    with pytest.raises(DatabaseError, match=refused) as info:
        DatabaseContainer().run(_ctx(tmp_path, environment), params)
    assert "\n" not in str(info.value)


def test_a_claimed_run_uses_only_a_namespace_it_made() -> None:
    """A run whose caller named its environment: a namespace that exists is refused unless
    its made-by-run annotation names this run; an unclaimed run is not asked."""
    from types import SimpleNamespace

    from envforge.actions.ownership import ANNOTATION_MADE_BY_RUN, check_existing_namespace

    def namespace(annotations: dict[str, str] | None) -> object:
        return SimpleNamespace(metadata=SimpleNamespace(annotations=annotations))

    check_existing_namespace(namespace({ANNOTATION_MADE_BY_RUN: "run-1"}), "pr-1", "pr-1",
                             "run-1", True, SecretDeliveryError)
    check_existing_namespace(namespace(None), "pr-1", "pr-1", "run-1", False,
                             SecretDeliveryError)
    for found in (namespace(None), namespace({ANNOTATION_MADE_BY_RUN: "run-2"}), None):
        with pytest.raises(SecretDeliveryError, match="exists and this run did not make it"):
            check_existing_namespace(found, "pr-1", "pr-1", "run-1", True, SecretDeliveryError)
    with pytest.raises(SecretDeliveryError):  # no run id: nothing can prove it made it
        check_existing_namespace(namespace({ANNOTATION_MADE_BY_RUN: ""}), "pr-1", "pr-1", "",
                                 True, SecretDeliveryError)
