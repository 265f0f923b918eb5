"""db:role without services: its input model, its dry run (names the role, the database and
the Secret; nothing else), and its refusal to deliver a login into another namespace than the
run's environment's, before it touches a server or a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from envforge.actions.base import ActionContext
from envforge.db.roles_action import DatabaseRole, DatabaseRoleInput, login_secret_name
from envforge.errors import DatabaseError


def _ctx(tmp_path: Path, **environment: str) -> ActionContext:
    return ActionContext(run_id="run-1", step_id="database-role", template_name="t",
                         template_dir=tmp_path, workspace=tmp_path, environment=environment)


def test_the_dry_run_names_role_database_and_secret_and_nothing_secret(tmp_path: Path) -> None:
    out = DatabaseRole().dry_run(_ctx(tmp_path), DatabaseRoleInput(environment="pr-12"))
    assert (out.role, out.database, out.namespace, out.secretName) == (
        "envforge_pr_12", "envforge_pr_12", "pr-12", "pr-12-db-login")
    assert not (out.roleCreated or out.secretCreated or out.namespaceCreated)
    assert set(out.model_dump()) == {"role", "database", "namespace", "secretName",
                                     "roleCreated", "secretCreated", "namespaceCreated"}
    assert login_secret_name("shop") == "shop-db-login"


def test_a_login_for_another_namespace_is_refused_before_anything_is_made(
        tmp_path: Path) -> None:
    params = DatabaseRoleInput(environment="pr-12", namespace="kube-system")
    with pytest.raises(DatabaseError, match="namespace 'kube-system' is not the "
                       "environment's own namespace 'pr-12'"):
        DatabaseRole().run(_ctx(tmp_path, name="pr-12", namespace="pr-12"), params)
    # a scaffold run (no environment) naming an environment makes no login for it
    with pytest.raises(DatabaseError, match="belongs to no environment"):
        DatabaseRole().run(_ctx(tmp_path), DatabaseRoleInput(environment="pr-12"))


def test_an_environment_name_that_is_no_dns_label_is_refused() -> None:
    with pytest.raises(ValidationError):
        DatabaseRoleInput(environment="Not A Label")
    with pytest.raises(ValidationError):
        DatabaseRoleInput(environment="pr-1", password="x")  # type: ignore[call-arg]
