"""The secrets and variables of one environment, end to end: plan (resolve, no fetching) ->
fetch from Vault (values stay in this process's memory) -> write the Git-bound manifests ->
deliver the Secret. :func:`fetch_and_deliver` does all of it in one call for a flow; the
``vault:secrets`` and ``kubernetes:secret`` actions do the halves as template steps.

Nothing returned here holds a value: :meth:`SecretsOutcome.summary` is safe for step outputs,
flow results and logs. Values live in :class:`FetchedSecrets` objects, kept per run in memory
(never persisted, never a parameter) and dropped with :func:`forget_run`.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from envforge.errors import SecretDeliveryError
from envforge.secrets.delivery import SecretDeliverer, SecretDelivery
from envforge.secrets.manifests import (
    render_config_map,
    render_external_secret,
    write_manifests,
)
from envforge.secrets.redaction import SecretRedactor, default_redactor
from envforge.secrets.variables import ResolvedVariable, VariableSources, resolve_variables
from envforge.secrets.vault import VaultSecretReader

Delivery = Literal["kubernetes-secret", "external-secrets"]
CONFIG_MAP_FILE = "configmap.yaml"
EXTERNAL_SECRET_FILE = "externalsecret.yaml"


@dataclass(frozen=True)
class SecretsPlan:
    """Which variable goes where, before anything is fetched."""

    environment: str
    namespace: str
    secret_name: str
    config_map_name: str
    delivery: Delivery
    variables: dict[str, ResolvedVariable]
    secret_store: str = "vault-backend"
    secret_store_kind: str = "ClusterSecretStore"

    @property
    def config_variables(self) -> dict[str, ResolvedVariable]:
        return {n: v for n, v in self.variables.items() if not v.secret}

    @property
    def secret_variables(self) -> dict[str, ResolvedVariable]:
        return {n: v for n, v in self.variables.items() if v.secret}

    @property
    def eso_variables(self) -> dict[str, ResolvedVariable]:
        """Produced by the External Secrets Operator (external-secrets delivery only)."""
        if self.delivery != "external-secrets":
            return {}
        return {n: v for n, v in self.secret_variables.items() if v.from_vault_only}

    @property
    def direct_variables(self) -> dict[str, ResolvedVariable]:
        """Delivered by envforge through the Kubernetes API."""
        return {n: v for n, v in self.secret_variables.items() if n not in self.eso_variables}

    @property
    def direct_secret_name(self) -> str:
        """With ESO owning ``secret_name``, envforge's own Secret needs another name."""
        if self.delivery == "external-secrets":
            return f"{self.secret_name}-envforge"
        return self.secret_name

    def summary(self) -> dict[str, Any]:
        """Names, scopes and references only; safe anywhere."""
        return {
            "environment": self.environment, "namespace": self.namespace,
            "delivery": self.delivery, "secretName": self.secret_name,
            "configMapName": self.config_map_name,
            "configKeys": sorted(self.config_variables),
            "secretKeys": sorted(self.secret_variables),
            "directSecretName": self.direct_secret_name if self.direct_variables else None,
            "directSecretKeys": sorted(self.direct_variables),
            "scopes": {n: v.winner.scope.label for n, v in self.variables.items()},
        }


def plan_environment_secrets(
    sources: VariableSources, *, namespace: str | None = None, delivery: Delivery =
    "kubernetes-secret", secret_name: str | None = None, config_map_name: str | None = None,
    secret_store: str = "vault-backend", secret_store_kind: str = "ClusterSecretStore",
) -> SecretsPlan:
    """Resolve the variables of ``sources.environment_name`` and decide where each goes."""
    env = sources.environment_name
    return SecretsPlan(env, namespace or env, secret_name or f"{env}-secrets",
                       config_map_name or f"{env}-config", delivery,
                       resolve_variables(sources), secret_store, secret_store_kind)


@dataclass
class FetchedSecrets:
    """The values to deliver, in memory only. ``repr`` shows names, never values."""

    plan: SecretsPlan
    values: dict[str, str] = field(default_factory=dict, repr=False)
    vault_reads: int = 0


def fetch_secrets(plan: SecretsPlan, reader: VaultSecretReader | None) -> FetchedSecrets:
    """Fetch what envforge itself delivers (each Vault path once); values get registered."""
    fetched = FetchedSecrets(plan)
    direct = plan.direct_variables
    need_vault = sorted(n for n, v in direct.items() if v.references)
    if need_vault and reader is None:
        raise SecretDeliveryError(
            f"environment {plan.environment}: variables {', '.join(need_vault)} need Vault, "
            "but no Vault connection is configured (vaultBlock or VAULT_ADDR)")
    redactor = reader.redactor if reader is not None else default_redactor()
    for name, variable in direct.items():
        # Sensitive built-ins have no references, so ``read`` is only called with a reader.
        value = variable.value(reader.read if reader is not None else _no_reader)
        redactor.register(value)
        fetched.values[name] = value
    fetched.vault_reads = reader.reads if reader is not None else 0
    return fetched


def _no_reader(ref: Any) -> str:
    raise SecretDeliveryError(f"{ref}: no Vault connection to read it with")


def write_git_manifests(plan: SecretsPlan, directory: Path,
                        redactor: SecretRedactor | None = None) -> list[Path]:
    """The ConfigMap (and ExternalSecret) files for the GitOps repository."""
    documents = [(CONFIG_MAP_FILE, render_config_map(
        plan.config_map_name, plan.namespace, plan.environment, plan.config_variables))]
    if plan.eso_variables:
        documents.append((EXTERNAL_SECRET_FILE, render_external_secret(
            plan.secret_name, plan.namespace, plan.environment, plan.eso_variables,
            plan.secret_store, plan.secret_store_kind)))
    return write_manifests(documents, directory, redactor)


def deliver_secrets(fetched: FetchedSecrets, deliverer: SecretDeliverer,
                    create_namespace: bool = True, run_id: str = "",
                    claimed: bool = False) -> SecretDelivery | None:
    """Create or replace the environment's Secret; on failure, remove the namespace this call
    created, then raise. None when there is nothing for envforge to deliver. ``claimed``: the
    caller named the environment, so only a namespace this run made is used."""
    plan = fetched.plan
    if not fetched.values:
        return None
    if claimed and not create_namespace:
        raise SecretDeliveryError(
            f"environment {plan.environment}: a run whose caller named its environment must "
            "create its namespace (createNamespace: true); it never delivers into one that "
            "exists")
    created_ns = deliverer.ensure_namespace(plan.namespace, plan.environment, run_id,
                                            claimed) if create_namespace else False
    try:
        delivery = deliverer.apply_secret(
            plan.namespace, plan.direct_secret_name, plan.environment, fetched.values,
            annotations={"envforge.dev/run-id": run_id} if run_id else None)
    except Exception:
        if created_ns:
            with contextlib.suppress(SecretDeliveryError):  # cluster gone: the error says so
                deliverer.delete_namespace(plan.namespace)
        raise
    delivery.namespace_created = created_ns
    return delivery


@dataclass
class SecretsOutcome:
    """What :func:`fetch_and_deliver` did; :meth:`summary` holds no value."""

    plan: SecretsPlan
    files: list[Path]
    delivery: SecretDelivery | None
    vault_reads: int

    def summary(self) -> dict[str, Any]:
        return {**self.plan.summary(), "files": [str(p) for p in self.files],
                "secretCreated": bool(self.delivery and self.delivery.created),
                "namespaceCreated": bool(self.delivery and self.delivery.namespace_created),
                "vaultReads": self.vault_reads}

    def undo(self, deliverer: SecretDeliverer) -> str:
        """Roll back: the delivered Secret (and namespace made for it) and the files."""
        for path in self.files:
            path.unlink(missing_ok=True)
        if self.delivery is None:
            return "nothing delivered"
        return deliverer.undo(self.delivery)


def fetch_and_deliver(
    plan: SecretsPlan, *, reader: VaultSecretReader | None, deliverer: SecretDeliverer | None,
    manifests_dir: Path, create_namespace: bool = True, run_id: str = "",
) -> SecretsOutcome:
    """The whole job for one template run: fetch, write the Git-bound manifests, deliver.
    On failure nothing is left behind (files removed, created namespace deleted)."""
    fetched = fetch_secrets(plan, reader)
    files = write_git_manifests(plan, manifests_dir)
    try:
        if fetched.values and deliverer is None:
            raise SecretDeliveryError(
                f"environment {plan.environment}: a Secret must be delivered but no cluster is "
                "configured (clusterBlock or KUBECONFIG)")
        delivery = deliver_secrets(fetched, deliverer, create_namespace, run_id) if (
            deliverer is not None) else None
    except Exception:
        for path in files:
            path.unlink(missing_ok=True)
        raise
    finally:
        fetched.values.clear()
    return SecretsOutcome(plan, files, delivery, fetched.vault_reads)


#: Fetched values per (run id, step id), in this process only. Bounded: the oldest runs are
#: dropped first should a flow never call forget_run.
MAX_REMEMBERED = 64
_runs: OrderedDict[tuple[str, str], FetchedSecrets] = OrderedDict()
_runs_lock = threading.Lock()


def remember_run(run_id: str, step_id: str, fetched: FetchedSecrets) -> None:
    """Keep fetched values for a later step of the same run, in this process only."""
    with _runs_lock:
        _runs[(run_id, step_id)] = fetched
        while len(_runs) > MAX_REMEMBERED:
            _runs.popitem(last=False)[1].values.clear()


def recall_run(run_id: str, step_id: str) -> FetchedSecrets | None:
    with _runs_lock:
        return _runs.get((run_id, step_id))


#: Deliveries of this process (kubernetes:secret), kept for rollback (they hold the replaced
#: Secret's data); dropped with the run's values, and bounded like them.
_deliveries: OrderedDict[tuple[str, str], SecretDelivery] = OrderedDict()


def remember_delivery(run_id: str, step_id: str, delivery: SecretDelivery) -> None:
    """Keep a step's delivery for its rollback, in this process only."""
    with _runs_lock:
        _deliveries[(run_id, step_id)] = delivery
        while len(_deliveries) > MAX_REMEMBERED:
            _deliveries.popitem(last=False)


def take_delivery(run_id: str, step_id: str) -> SecretDelivery | None:
    """The step's delivery, forgotten as it is handed out (a rollback undoes it once)."""
    with _runs_lock:
        return _deliveries.pop((run_id, step_id), None)


def forget_run(run_id: str, step_id: str | None = None) -> None:
    """Drop the values and delivery records of a run (or of one of its steps). The runner
    calls this when a run ends (TemplateRun.close)."""
    with _runs_lock:
        for key in [k for k in _runs if k[0] == run_id and step_id in (None, k[1])]:
            _runs.pop(key).values.clear()
        for key in [k for k in _deliveries if k[0] == run_id and step_id in (None, k[1])]:
            _deliveries.pop(key, None)
