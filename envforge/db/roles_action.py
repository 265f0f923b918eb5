"""``db:role``: the environment's own database login, its password delivered as a Secret.

After the environment's database exists (db:seed, db:restore, db:clone, db:branch), this step
generates a password, creates the role ``envforge_<name>`` with the password's SCRAM-SHA-256
verifier (envforge.db.roles: the plain password never reaches the server as text), grants it
its database, and delivers ``PGUSER``/``PGPASSWORD``/``PGDATABASE`` as the Secret
``<name>-db-login`` through the Kubernetes API, labelled like every Secret envforge delivers so
destroy deletes it. The password goes straight into that Secret rather than through Vault: the
role is made by this step, so there is nothing in Vault to read it from, and a copy in Vault
would be one more place to delete (db:container delivers its password the same way). Outputs
name the role and the Secret, never the password. Rollback deletes the Secret and drops the
role when this run made it; destroy and a killed create's clean-up drop it too.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.actions.ownership import check_environment_namespace, is_claimed
from envforge.core.names import DnsLabel
from envforge.db.actions import load_server
from envforge.db.container import generate_password
from envforge.db.kube_secrets import EnvironmentSecretWriter
from envforge.db.roles import (
    create_environment_role,
    drop_environment_role,
    regrant_environment_role,
    role_name,
    scram_verifier,
)
from envforge.db.safety import assert_owned, target_database_name
from envforge.errors import DatabaseError
from envforge.services import require_connections


def login_secret_name(name: str) -> str:
    """The Secret the app reads its database login from."""
    return f"{name}-db-login"


class DatabaseRoleInput(ActionInput):
    environment: DnsLabel = Field(description="Environment name: role, database, labels.")
    name: DnsLabel | None = Field(None, description="Workload name (<name>-db-login); default: "
                                  "the environment name.")
    namespace: DnsLabel | None = Field(None, description="Namespace; default: the environment.")
    readOnly: bool = Field(False, description="SELECT only (default: read and write rows).")
    replace: bool = Field(False, description="The database was rebuilt (refresh): grant the "
                          "existing role again, keeping its password and Secret.")
    targetBlock: str | None = Field(None, description="DatabaseServer block holding the "
                                    "environment's database; default: PG*.")
    clusterBlock: str | None = Field(None, description="KubernetesCluster block; default: "
                                     "KUBECONFIG or in-cluster.")


class DatabaseRoleOutput(ActionOutput):
    role: str
    database: str
    namespace: str
    secretName: str
    roleCreated: bool = False
    secretCreated: bool = False
    namespaceCreated: bool = False


class DatabaseRole(Action[DatabaseRoleInput, DatabaseRoleOutput]):
    id = "db:role"
    description = ("Give the environment its own database login (SCRAM-SHA-256, granted its "
                   "database only) and deliver the password as a Secret.")
    input_model = DatabaseRoleInput
    output_model = DatabaseRoleOutput
    supports_dry_run = True
    examples = [{"id": "database-role", "name": "Database login", "action": "db:role",
                 "input": {"environment": "${{ parameters.name }}"}}]

    def _output(self, params: DatabaseRoleInput, **done: Any) -> DatabaseRoleOutput:
        return DatabaseRoleOutput(
            role=role_name(params.environment),
            database=target_database_name(params.environment),
            namespace=params.namespace or params.environment,
            secretName=login_secret_name(params.name or params.environment), **done)

    def run(self, ctx: ActionContext, params: DatabaseRoleInput) -> DatabaseRoleOutput:
        # a login goes only to the run's own environment and namespace (D9)
        check_environment_namespace(ctx, params.environment, params.namespace,
                                    f"step {ctx.step_id!r} (db:role)", DatabaseError)
        out = self._output(params)
        connections = require_connections(ctx.services, f"step {ctx.step_id!r}")
        server = load_server(params.targetBlock, connections).address()
        assert_owned(server, out.database)  # only a database envforge made gets a login
        if params.replace and regrant_environment_role(server, params.environment,
                                                       read_only=params.readOnly):
            ctx.logger.info("database login %s granted %s again (password kept)", out.role,
                            out.database)
            return out
        password = generate_password()
        cluster = connections.kubernetes_cluster(params.clusterBlock)
        writer = EnvironmentSecretWriter(cluster.api_client, cluster.request_timeout_seconds,
                                   (password,))
        role_created = create_environment_role(
            server, params.environment, scram_verifier(password), ctx.run_id,
            read_only=params.readOnly)
        try:
            namespace_created = writer.ensure_namespace(out.namespace, params.environment,
                                                        ctx.run_id, is_claimed(ctx.environment))
            secret_created = writer.apply(
                out.namespace, out.secretName, params.environment,
                {"PGUSER": out.role, "PGPASSWORD": password, "PGDATABASE": out.database})
        except BaseException:
            if role_created:
                drop_environment_role(server, params.environment, run_id=ctx.run_id)
            raise
        ctx.logger.info("database login %s for %s (SCRAM-SHA-256), password in Secret %s/%s",
                        out.role, out.database, out.namespace, out.secretName)
        return out.model_copy(update={"roleCreated": role_created,
                                      "secretCreated": secret_created,
                                      "namespaceCreated": namespace_created})

    def dry_run(self, ctx: ActionContext, params: DatabaseRoleInput) -> DatabaseRoleOutput:
        out = self._output(params)
        ctx.logger.info("dry run: would create role %s for %s and deliver Secret %s/%s",
                        out.role, out.database, out.namespace, out.secretName)
        return out

    def rollback(self, ctx: ActionContext, params: DatabaseRoleInput,
                 output: DatabaseRoleOutput) -> None:
        connections = require_connections(ctx.services, f"step {ctx.step_id!r}")
        if output.secretCreated or output.namespaceCreated:
            cluster = connections.kubernetes_cluster(params.clusterBlock)
            writer = EnvironmentSecretWriter(cluster.api_client, cluster.request_timeout_seconds,
                                             ())
            writer.delete_secret(output.namespace, output.secretName)
            ctx.logger.info("rolled back: deleted Secret %s/%s", output.namespace,
                            output.secretName)
            if output.namespaceCreated:
                writer.delete_namespace(output.namespace)
        if output.roleCreated:
            server = load_server(params.targetBlock, connections).address()
            if drop_environment_role(server, params.environment, run_id=ctx.run_id):
                ctx.logger.info("rolled back: dropped role %s", output.role)


ACTIONS: list[type[Action[Any, Any]]] = [DatabaseRole]
