"""``vault:secrets`` and ``kubernetes:secret``: the secrets and variables of an environment as
template steps.

``vault:secrets`` resolves the variables (template ``spec.variables`` < project file < type <
environment), fetches the secret ones from Vault (each path once; values stay in this process's
memory, masked in every log) and writes the Git-bound ConfigMap (and ExternalSecret) into the
workspace. ``kubernetes:secret`` then creates or replaces the environment's Secret through the
Kubernetes API. Outputs hold names and keys, never values. Both roll back what they did.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.actions.ownership import check_environment_namespace, is_claimed
from envforge.connections import ConnectionSource
from envforge.core.names import DnsLabel
from envforge.core.paths import resolve_inside
from envforge.errors import SecretDeliveryError, SecretReferenceError
from envforge.secrets.delivery import SecretDeliverer, SecretDelivery
from envforge.secrets.environment import (
    FetchedSecrets,
    deliver_secrets,
    fetch_secrets,
    forget_run,
    plan_environment_secrets,
    recall_run,
    remember_delivery,
    remember_run,
    take_delivery,
    write_git_manifests,
)
from envforge.secrets.redaction import install as install_redaction
from envforge.secrets.references import find_references
from envforge.secrets.variables import VariableSources, load_project_file
from envforge.services import require_connections
from envforge.templating.loader import load_template

#: ctx.environment keys that become built-in variables.
BUILTIN_KEYS = {"name": "ENV_NAME", "url": "ENV_URL", "databaseUrl": "DATABASE_URL",
                "imageDigest": "IMAGE_DIGEST", "type": "ENV_TYPE"}
GIT_BOUND_ACTIONS = re.compile(r"^(fetch|publish):")
SECRETS_EXPRESSION = re.compile(r"\$\{\{[^}]*\bsecrets\.")


class VaultSecretsInput(ActionInput):
    environment: DnsLabel = Field(description="Environment name: labels, environment scope.")
    environmentType: Literal["preview", "development", "staging"] = "preview"
    namespace: str | None = Field(None, description="Namespace; default: the environment name.")
    variablesFile: str | None = Field(
        None, description="Project variables file (relative to the template, or absolute).")
    overrides: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Environment-scope overrides.")
    builtins: dict[str, str] = Field(default_factory=dict,
                                     description="Extra built-ins from the run.")
    sensitiveBuiltins: list[str] = Field(default_factory=lambda: ["DATABASE_URL"])
    delivery: Literal["kubernetes-secret", "external-secrets"] = "kubernetes-secret"
    secretName: str | None = Field(None, description="Default: <environment>-secrets.")
    configMapName: str | None = Field(None, description="Default: <environment>-config.")
    targetPath: str = Field("manifests", description="Workspace directory for the manifests.")
    vaultBlock: str | None = Field(None, description="VaultConnection block; default: VAULT_*.")
    secretStore: str = "vault-backend"
    secretStoreKind: Literal["ClusterSecretStore", "SecretStore"] = "ClusterSecretStore"


class VaultSecretsOutput(ActionOutput):
    environment: str
    namespace: str
    delivery: str
    secretName: str
    configMapName: str
    configKeys: list[str] = Field(default_factory=list)
    secretKeys: list[str] = Field(default_factory=list)
    directSecretName: str | None = None
    directSecretKeys: list[str] = Field(default_factory=list)
    scopes: dict[str, str] = Field(default_factory=dict)
    files: list[str] = Field(default_factory=list, description="Workspace-relative paths.")
    vaultReads: int = 0


def load_vault_reader(block_name: str | None, connections: ConnectionSource) -> Any:
    """The per-run reader from a VaultConnection block, or from VAULT_* variables."""
    return connections.vault_reader(block_name)


def load_deliverer(block_name: str | None, connections: ConnectionSource) -> SecretDeliverer:
    """A deliverer into the KubernetesCluster block's cluster, or KUBECONFIG / in-cluster."""
    cluster = connections.kubernetes_cluster(block_name)
    return SecretDeliverer(cluster.api_client, timeout_seconds=cluster.request_timeout_seconds)


def _connections(ctx: ActionContext) -> ConnectionSource:
    """The connections the run was handed (the composition root's)."""
    return require_connections(ctx.services, f"step {ctx.step_id!r}")


def check_delivery_namespace(ctx: ActionContext, params: VaultSecretsInput) -> None:
    """Secrets go only into the environment's own namespace: not kube-system, not another
    environment's (D9). The run's environment, when it has one, decides which that is."""
    check_environment_namespace(ctx, params.environment, params.namespace,
                                f"step {ctx.step_id!r} (vault:secrets)", SecretDeliveryError)


def git_bound_secret_references(template_dir: Path) -> list[str]:
    """Fields of fetch:*/publish:* steps (which end up in Git) that hold secret references."""
    template = load_template(template_dir)
    found = []
    for step in template.spec.steps:
        if not GIT_BOUND_ACTIONS.match(step.action):
            continue
        where = f"step {step.id!r} ({step.action}) input"
        found += [path for path, _ in find_references(step.input, where)]
        found += [path for path, text in _strings(step.input, where)
                  if SECRETS_EXPRESSION.search(text)]
    return found


def _strings(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _strings(v, f"{where}[{i}]")]
    return []


class VaultSecrets(Action[VaultSecretsInput, VaultSecretsOutput]):
    id = "vault:secrets"
    description = ("Resolve the environment's variables, fetch its secrets from Vault and write "
                   "its ConfigMap (and ExternalSecret) manifests; values never leave memory.")
    input_model = VaultSecretsInput
    output_model = VaultSecretsOutput
    supports_dry_run = True
    retries = 2
    examples = [{
        "id": "secrets", "name": "Secrets and variables", "action": "vault:secrets",
        "input": {"environment": "${{ parameters.name }}", "environmentType": "preview",
                  "variablesFile": "./variables.yaml", "overrides": {"LOG_LEVEL": "debug"}},
    }]

    def _sources(self, ctx: ActionContext, params: VaultSecretsInput) -> VariableSources:
        template = load_template(ctx.template_dir)
        builtins = {"ENV_NAME": params.environment, "ENV_TYPE": params.environmentType,
                    "ENV_NAMESPACE": params.namespace or params.environment}
        builtins |= {var: str(ctx.environment[key]) for key, var in BUILTIN_KEYS.items()
                     if ctx.environment.get(key) is not None}
        builtins |= params.builtins
        project: dict[str, Any] = {}
        project_source = "project variables file"
        if params.variablesFile:
            path = Path(params.variablesFile)
            if not path.is_absolute():
                path = resolve_inside(ctx.template_dir, params.variablesFile, "template")
            project, project_source = load_project_file(path), str(path)
        return VariableSources(
            builtins=builtins, sensitive_builtins=frozenset(params.sensitiveBuiltins),
            template=(template.spec.model_extra or {}).get("variables") or {},
            project=project, environment_type=params.environmentType,
            environment_name=params.environment, overrides=params.overrides,
            template_source=f"{template.file} spec.variables", project_source=project_source)

    def _prepare(self, ctx: ActionContext, params: VaultSecretsInput) -> Any:
        install_redaction()
        check_delivery_namespace(ctx, params)
        refused = git_bound_secret_references(ctx.template_dir)
        if refused:
            raise SecretReferenceError(
                f"{', '.join(refused)}: secret references are not allowed in fields that end "
                "up in Git; declare them as variables of the vault:secrets step and refer to "
                "the delivered Secret by name")
        plan = plan_environment_secrets(
            self._sources(ctx, params), namespace=params.namespace, delivery=params.delivery,
            secret_name=params.secretName, config_map_name=params.configMapName,
            secret_store=params.secretStore, secret_store_kind=params.secretStoreKind)
        # only the Vault paths this template was given (envforge.capabilities.vault_scope)
        for name, variable in sorted(plan.direct_variables.items()):
            for reference in variable.references:
                ctx.capabilities.vault_scope.check(
                    f"{reference.mount}/{reference.path}", ctx.template_name,
                    f"variable {name}",
                    SecretReferenceError)
        return plan

    def _output(self, ctx: ActionContext, plan: Any, files: list[Path], reads: int
                ) -> VaultSecretsOutput:
        summary = plan.summary()
        return VaultSecretsOutput(
            **{k: summary[k] for k in ("environment", "namespace", "delivery", "configKeys",
                                       "secretKeys", "directSecretKeys", "scopes")},
            secretName=summary["secretName"], configMapName=summary["configMapName"],
            directSecretName=summary["directSecretName"], vaultReads=reads,
            files=[str(p.relative_to(ctx.workspace)) for p in files])

    def run(self, ctx: ActionContext, params: VaultSecretsInput) -> VaultSecretsOutput:
        plan = self._prepare(ctx, params)
        reader = None
        if any(v.references for v in plan.direct_variables.values()):
            reader = load_vault_reader(params.vaultBlock, _connections(ctx))
        fetched = fetch_secrets(plan, reader)
        target = resolve_inside(ctx.workspace, params.targetPath, "workspace")
        files = write_git_manifests(plan, target)
        remember_run(ctx.run_id, ctx.step_id, fetched)
        ctx.logger.info("environment %s: %d variable(s) in ConfigMap %s, %d secret(s) fetched "
                        "(%d Vault read(s))", plan.environment, len(plan.config_variables),
                        plan.config_map_name, len(fetched.values), fetched.vault_reads)
        return self._output(ctx, plan, files, fetched.vault_reads)

    def dry_run(self, ctx: ActionContext, params: VaultSecretsInput) -> VaultSecretsOutput:
        plan = self._prepare(ctx, params)
        files = write_git_manifests(plan, resolve_inside(ctx.workspace, params.targetPath,
                                                         "workspace"))
        remember_run(ctx.run_id, ctx.step_id, FetchedSecrets(plan))  # the plan, no values
        ctx.logger.info("dry run: would fetch %d secret variable(s) from Vault",
                        len(plan.direct_variables))
        return self._output(ctx, plan, files, 0)

    def rollback(self, ctx: ActionContext, params: VaultSecretsInput,
                 output: VaultSecretsOutput) -> None:
        forget_run(ctx.run_id, ctx.step_id)
        for name in output.files:
            (ctx.workspace / name).unlink(missing_ok=True)

    def check(self, params: VaultSecretsInput, template_dir: Path) -> list[str]:
        return [f"{path}: secret reference in a field that ends up in Git"
                for path in git_bound_secret_references(template_dir)]


class KubernetesSecretInput(ActionInput):
    fromStep: str = Field("secrets", description="Id of the vault:secrets step to deliver.")
    createNamespace: bool = Field(True, description="Create the namespace if it is missing.")
    clusterBlock: str | None = Field(None, description="KubernetesCluster block; default: "
                                     "KUBECONFIG or in-cluster.")


class KubernetesSecretOutput(ActionOutput):
    namespace: str
    secretName: str | None = None
    # not "keys": Prefect turns outputs into dicts, and dict() calls a model's keys()
    secretKeys: list[str] = Field(default_factory=list)
    delivered: bool = False
    created: bool = False
    namespaceCreated: bool = False
    resourceVersion: str = ""


class KubernetesSecret(Action[KubernetesSecretInput, KubernetesSecretOutput]):
    id = "kubernetes:secret"
    description = ("Create or replace the environment's Secret (labelled with the environment) "
                   "through the Kubernetes API from a vault:secrets step of the same run.")
    input_model = KubernetesSecretInput
    output_model = KubernetesSecretOutput
    supports_dry_run = True
    retries = 2
    examples = [{"id": "deliver", "name": "Deliver the Secret", "action": "kubernetes:secret",
                 "input": {"fromStep": "secrets"}}]

    def _fetched(self, ctx: ActionContext, params: KubernetesSecretInput) -> FetchedSecrets:
        fetched = recall_run(ctx.run_id, params.fromStep)
        if fetched is None:
            raise SecretDeliveryError(
                f"step {ctx.step_id!r}: no secrets from step {params.fromStep!r} in this run; "
                "it must be a vault:secrets step that ran earlier in the same process (values "
                "are never persisted)")
        return fetched

    def run(self, ctx: ActionContext, params: KubernetesSecretInput) -> KubernetesSecretOutput:
        fetched = self._fetched(ctx, params)
        plan = fetched.plan
        if not fetched.values:
            ctx.logger.info("nothing for envforge to deliver (delivery %s)", plan.delivery)
            return KubernetesSecretOutput(namespace=plan.namespace)
        # recorded before delivery: a killed create's clean-up deletes them on this cluster
        ctx.ledger.record("secrets", "intended", cluster=params.clusterBlock,
                          namespace=plan.namespace)
        deliverer = load_deliverer(params.clusterBlock, _connections(ctx))
        delivery = deliver_secrets(fetched, deliverer, params.createNamespace, ctx.run_id,
                                   claimed=is_claimed(ctx.environment))
        assert delivery is not None
        remember_delivery(ctx.run_id, ctx.step_id, delivery)
        fetched.values.clear()  # delivered: the values need not stay in memory
        ctx.logger.info("%s Secret %s/%s with key(s) %s",
                        "created" if delivery.created else "replaced", delivery.namespace,
                        delivery.name, ", ".join(delivery.keys))
        return KubernetesSecretOutput(
            namespace=delivery.namespace, secretName=delivery.name, secretKeys=delivery.keys,
            delivered=True, created=delivery.created,
            namespaceCreated=delivery.namespace_created,
            resourceVersion=delivery.resource_version)

    def dry_run(self, ctx: ActionContext, params: KubernetesSecretInput
                ) -> KubernetesSecretOutput:
        fetched = self._fetched(ctx, params)
        plan = fetched.plan
        ctx.logger.info("dry run: would deliver Secret %s/%s with key(s) %s", plan.namespace,
                        plan.direct_secret_name, ", ".join(sorted(plan.direct_variables)))
        return KubernetesSecretOutput(namespace=plan.namespace,
                                      secretName=plan.direct_secret_name,
                                      secretKeys=sorted(plan.direct_variables))

    def rollback(self, ctx: ActionContext, params: KubernetesSecretInput,
                 output: KubernetesSecretOutput) -> None:
        if not output.delivered or output.secretName is None:
            return
        delivery = take_delivery(ctx.run_id, ctx.step_id) or SecretDelivery(
            output.namespace, output.secretName, output.secretKeys, output.created,
            output.namespaceCreated)
        if not delivery.created and delivery.previous_data is None:
            ctx.logger.warning("Secret %s/%s was replaced in another process; its previous "
                               "content cannot be restored and is left as delivered",
                               delivery.namespace, delivery.name)
            return
        outcome = load_deliverer(params.clusterBlock, _connections(ctx)).undo(delivery)
        ctx.logger.info("rolled back: %s", outcome)


ACTIONS = [VaultSecrets, KubernetesSecret]
