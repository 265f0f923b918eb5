"""The one block loader: Prefect Blocks behind envforge's ``ConnectionSource``, and the
services built on them.

The library asks the connection source it is handed for connections by name
(``envforge.connections``); this module answers with saved Blocks, or, when no name is given,
with the block type's ``from_settings()`` (Vault's VAULT_*, libpq's PG*, KUBECONFIG, ... as the
settings read them).
Loading a block and turning its failure into one ConfigurationError happens here and nowhere
else. :func:`services_from_blocks` is what both composition roots (``flows/services.py``,
``envforge/cli/services.py``) build their :class:`~envforge.services.Services` with.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from blocks import block_types
from blocks.container_registry import ContainerRegistry
from blocks.database import AnonymisationKey, DatabaseServer
from blocks.git import GitCredentials
from blocks.kubernetes import KubernetesCluster
from blocks.loading import load_block
from blocks.vault import VaultConnection
from blocks.webhooks import GitProviderToken, WebhookSecrets
from envforge.composition import build_services
from envforge.connections import DatabaseServerSource, KubernetesConnection
from envforge.db.connection import ServerAddress
from envforge.images.git_auth import GitAuth
from envforge.images.registry_client import RegistryAccess
from envforge.secrets.vault import VaultSecretReader
from envforge.services import Services, StepListener
from envforge.settings import EnvforgeSettings, load_settings
from envforge.summary.comments import PullRequestCommenter
from envforge.summary.pr_status import PullRequestStatusReporter
from envforge.webhooks.server import WebhookCredentials


class _DatabaseServerAddresses:
    """Adapts a DatabaseServer block to envforge's DatabaseServerSource."""

    def __init__(self, server: DatabaseServer) -> None:
        self._server = server

    def address(self, database: str | None = None) -> ServerAddress:
        """The server with ``database`` (default: its maintenance database)."""
        return self._server.address(database)


class BlockConnections:
    """Connections from Prefect Blocks (unnamed: each service's own environment variables, as
    ``settings`` read them; default: the process's settings when a connection is asked for)."""

    def __init__(self, settings: EnvforgeSettings | None = None) -> None:
        self._settings = settings

    def vault_reader(self, name: str | None) -> VaultSecretReader:
        return load_block(VaultConnection, name, self._settings).get_reader()

    def kubernetes_cluster(self, name: str | None) -> KubernetesConnection:
        cluster = load_block(KubernetesCluster, name, self._settings)
        return KubernetesConnection(cluster.get_client(), cluster.describe(),
                                    cluster.request_timeout_seconds)

    def database_server(self, name: str | None) -> DatabaseServerSource:
        return _DatabaseServerAddresses(load_block(DatabaseServer, name, self._settings))

    def anonymisation_key(self, name: str | None) -> bytes:
        return load_block(AnonymisationKey, name, self._settings).get_key()

    def image_registry(self, name: str) -> RegistryAccess:
        return load_block(ContainerRegistry, name).access()

    def git_auth(self, name: str) -> GitAuth:
        return load_block(GitCredentials, name).auth(identity=name)

    def pull_request_commenter(self, name: str) -> AbstractContextManager[PullRequestCommenter]:
        return load_block(GitProviderToken, name).get_client()

    def pull_request_status(self, name: str
                            ) -> AbstractContextManager[PullRequestStatusReporter]:
        return load_block(GitProviderToken, name).status_client()

    def webhook_credentials(self, name: str) -> WebhookCredentials:
        return load_block(WebhookSecrets, name).credentials()

    def block_types(self) -> list[Any]:
        return block_types()


def services_from_blocks(settings: EnvforgeSettings | None = None,
                         step_listeners: tuple[StepListener, ...] = ()) -> Services:
    """Services whose connections are Prefect Blocks (by name; unnamed: the environment's),
    with ``settings`` (default: the process's), wired by envforge.composition."""
    settings = settings or load_settings()
    return build_services(settings, BlockConnections(settings), step_listeners)


def send_notification(block_name: str, subject: str, body: str) -> None:
    """Send ``body`` through the Prefect notification block ``block_name`` (``<type>/<name>``,
    e.g. ``slack-webhook/team``); ConfigurationError when it cannot be loaded."""
    from prefect.blocks.core import Block

    block: Any = load_block(Block, block_name)  # sync here: Prefect's load is sync_compatible
    block.notify(body=body, subject=subject)
