"""``db:container``: the environment's own PostgreSQL as a container in its namespace.

The step checks the image is in its registry, builds the template's seed as SQL
(envforge.db.container), generates the database's password and delivers both as the Secret
``<name>-database`` through the Kubernetes API (never Git), labelled like every Secret envforge
delivers so destroy finds it. The StatefulSet ``<name>-db`` and its Service come from the
template's manifests; the outputs say where the app reaches the database, never the password.
Rollback deletes the Secret (and the namespace when this step made it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.actions.ownership import (
    check_environment_namespace,
    is_claimed,
)
from envforge.core.names import DnsLabel
from envforge.db.actions import load_server
from envforge.db.container import (
    ImageReference,
    check_image,
    generate_password,
    secret_name,
    seed_script,
)
from envforge.db.kube_secrets import EnvironmentSecretWriter
from envforge.db.safety import target_database_name
from envforge.errors import DatabaseError
from envforge.services import require_connections

PORT = 5432
USER = "postgres"


class DatabaseContainerInput(ActionInput):
    environment: DnsLabel = Field(description="Environment name: labels, database name.")
    name: DnsLabel | None = Field(None, description="Workload name (<name>-db, <name>-database);"
                                  " default: the environment name.")
    namespace: DnsLabel | None = Field(None, description="Namespace; default: the environment.")
    image: str = Field(description="PostgreSQL image (scripts/services/images.sh postgres), "
                       "host[:port]/repository:tag.")
    tlsVerify: bool = Field(True, description="The image's registry speaks TLS.")
    schema_: str | None = Field(None, alias="schema", description="SQL schema file (template).")
    fixtures: list[str] = Field(default_factory=list, description="SQL, CSV or YAML files.")
    generate: dict[str, int] = Field(default_factory=dict, description="table -> synthetic rows")
    seed: int = Field(0, description="Faker/random seed: same seed, same rows.")
    targetBlock: str | None = Field(None, description="DatabaseServer block the seed is built "
                                    "on (a scratch database, dropped); default: PG*.")
    clusterBlock: str | None = Field(None, description="KubernetesCluster block; default: "
                                     "KUBECONFIG or in-cluster.")


class DatabaseContainerOutput(ActionOutput):
    namespace: str
    secretName: str
    host: str
    port: int = PORT
    user: str = USER
    database: str
    image: str
    imageCheck: str = ""
    rows: int = 0
    created: bool = False
    namespaceCreated: bool = False


class DatabaseContainer(Action[DatabaseContainerInput, DatabaseContainerOutput]):
    id = "db:container"
    description = ("Give the environment its own PostgreSQL container: check the image, build "
                   "the seed, deliver a generated password and the seed as a Secret.")
    input_model = DatabaseContainerInput
    output_model = DatabaseContainerOutput
    supports_dry_run = True
    examples = [{"id": "database-container", "name": "Database container",
                 "action": "db:container",
                 "input": {"environment": "${{ parameters.name }}",
                           "image": "127.0.0.1:5000/base/postgres:15", "tlsVerify": False,
                           "schema": "db/schema.sql", "generate": {"public.customers": 50},
                           "seed": 42}}]

    def _output(self, params: DatabaseContainerInput, **done: Any) -> DatabaseContainerOutput:
        name = params.name or params.environment
        return DatabaseContainerOutput(
            namespace=params.namespace or params.environment, secretName=secret_name(name),
            host=f"{name}-db", database=target_database_name(params.environment),
            image=params.image, **done)

    def run(self, ctx: ActionContext, params: DatabaseContainerInput) -> DatabaseContainerOutput:
        # the environment's own namespace only (a scaffold or a template input never picks it)
        check_environment_namespace(ctx, params.environment, params.namespace,
                                    f"step {ctx.step_id!r} (db:container)", DatabaseError)
        image = ImageReference.parse(params.image)
        checked = check_image(image, params.tlsVerify)
        connections = require_connections(ctx.services, f"step {ctx.step_id!r}")
        server = load_server(params.targetBlock, connections).address()
        script, rows = seed_script(
            server, params.environment,
            ctx.template_dir / params.schema_ if params.schema_ else None,
            [ctx.template_dir / f for f in params.fixtures], params.generate, params.seed,
            ctx.run_id, ctx.logger)
        out = self._output(params, imageCheck=checked, rows=rows)
        password = generate_password()
        cluster = connections.kubernetes_cluster(params.clusterBlock)
        writer = EnvironmentSecretWriter(cluster.api_client, cluster.request_timeout_seconds,
                               (password, script))
        namespace_created = writer.ensure_namespace(out.namespace, params.environment,
                                                    ctx.run_id, is_claimed(ctx.environment))
        try:
            created = writer.apply(out.namespace, out.secretName, params.environment,
                                   {"password": password, "seed.sql": script})
        except BaseException:
            if namespace_created:
                writer.delete_namespace(out.namespace)
            raise
        ctx.logger.info("database container %s: image %s (%s), seed of %d rows and a generated "
                        "password in Secret %s/%s", out.host, image, checked, rows,
                        out.namespace, out.secretName)
        return out.model_copy(update={"created": created, "namespaceCreated": namespace_created})

    def dry_run(self, ctx: ActionContext, params: DatabaseContainerInput
                ) -> DatabaseContainerOutput:
        out = self._output(params)
        ctx.logger.info("dry run: would check %s, seed, and deliver Secret %s/%s", params.image,
                        out.namespace, out.secretName)
        return out

    def rollback(self, ctx: ActionContext, params: DatabaseContainerInput,
                 output: DatabaseContainerOutput) -> None:
        if not output.created and not output.namespaceCreated:
            return
        connections = require_connections(ctx.services, f"step {ctx.step_id!r}")
        cluster = connections.kubernetes_cluster(params.clusterBlock)
        writer = EnvironmentSecretWriter(cluster.api_client, cluster.request_timeout_seconds, ())
        # the Secret first, at once: a namespace's deletion empties it only later
        writer.delete_secret(output.namespace, output.secretName)
        ctx.logger.info("rolled back: deleted Secret %s/%s", output.namespace, output.secretName)
        if output.namespaceCreated:
            writer.delete_namespace(output.namespace)
            ctx.logger.info("rolled back: deleted namespace %s", output.namespace)

    def check(self, params: DatabaseContainerInput, template_dir: Path) -> list[str]:
        missing = [f for f in ([params.schema_] if params.schema_ else []) + params.fixtures
                   if not (template_dir / f).is_file()]
        return [f"db:container: {f} is not a file of the template" for f in missing]


ACTIONS: list[type[Action[Any, Any]]] = [DatabaseContainer]
