"""The one block loader: Prefect Blocks behind envforge's ``ConnectionSource``.

The library asks for connections by name (``envforge.connections``); this module answers with
saved Blocks, or, when no name is given, with the block type's ``from_environment()`` (Vault's
VAULT_*, libpq's PG*, KUBECONFIG, ...). Loading a block and turning its failure into one
ConfigurationError happens here and nowhere else. Registered as the ``envforge.connections``
entry point in pyproject.toml.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, TypeVar

from blocks import block_types
from blocks.container_registry import ContainerRegistry
from blocks.database import AnonymisationKey, DatabaseServer
from blocks.git import GitCredentials
from blocks.kubernetes import KubernetesCluster
from blocks.vault import VaultConnection
from blocks.webhooks import GitProviderToken, WebhookSecrets
from envforge.connections import DatabaseServerSource, KubernetesConnection
from envforge.db.connection import ServerAddress
from envforge.errors import ConfigurationError
from envforge.images.git_auth import GitAuth
from envforge.images.registry_client import RegistryAccess
from envforge.secrets.vault import VaultSecretReader
from envforge.summary.comments import PullRequestCommenter
from envforge.summary.pr_status import PullRequestStatusReporter
from envforge.webhooks.server import WebhookCredentials

BlockT = TypeVar("BlockT")


def load_block(block_cls: type[BlockT], name: str | None) -> BlockT:
    """The saved block ``name`` of ``block_cls``, or ``block_cls.from_environment()`` for None.

    Raises ConfigurationError naming the type and the name; never the block's values.
    """
    if name is None:
        from_environment = getattr(block_cls, "from_environment", None)
        if from_environment is None:
            raise ConfigurationError(f"name a {block_cls.__name__} block: it has no default "
                                     "from environment variables")
        found: BlockT = from_environment()
        return found
    try:
        loaded: BlockT = block_cls.load(name)  # type: ignore[attr-defined]
    except ValueError as e:  # Prefect: no block document of that name and type
        raise ConfigurationError(
            f"no {block_cls.__name__} block named {name!r}: save one in the Prefect UI "
            "(after 'envforge blocks register')") from e
    except Exception as e:  # httpx and OS errors when the Prefect API does not answer
        raise ConfigurationError(
            f"no {block_cls.__name__} block named {name!r} could be loaded: the Prefect API "
            f"did not answer ({type(e).__name__}); check PREFECT_API_URL") from e
    return loaded


class _DatabaseServerAddresses:
    """Adapts a DatabaseServer block to envforge's DatabaseServerSource."""

    def __init__(self, server: DatabaseServer) -> None:
        self._server = server

    def address(self, database: str | None = None) -> ServerAddress:
        """The server with ``database`` (default: its maintenance database)."""
        return self._server.address(database)


class BlockConnections:
    """Connections from Prefect Blocks (the entry point ``envforge.connections:blocks``)."""

    def vault_reader(self, name: str | None) -> VaultSecretReader:
        return load_block(VaultConnection, name).get_reader()

    def kubernetes_cluster(self, name: str | None) -> KubernetesConnection:
        cluster = load_block(KubernetesCluster, name)
        return KubernetesConnection(cluster.get_client(), cluster.describe(),
                                    cluster.request_timeout_seconds)

    def database_server(self, name: str | None) -> DatabaseServerSource:
        return _DatabaseServerAddresses(load_block(DatabaseServer, name))

    def anonymisation_key(self, name: str | None) -> bytes:
        return load_block(AnonymisationKey, name).get_key()

    def image_registry(self, name: str) -> RegistryAccess:
        return load_block(ContainerRegistry, name).access()

    def git_auth(self, name: str) -> GitAuth:
        return load_block(GitCredentials, name).auth()

    def pull_request_commenter(self, name: str) -> AbstractContextManager[PullRequestCommenter]:
        return load_block(GitProviderToken, name).get_client()

    def pull_request_status(self, name: str
                            ) -> AbstractContextManager[PullRequestStatusReporter]:
        return load_block(GitProviderToken, name).status_client()

    def webhook_credentials(self, name: str) -> WebhookCredentials:
        return load_block(WebhookSecrets, name).credentials()

    def block_types(self) -> list[Any]:
        return block_types()
