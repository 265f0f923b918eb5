"""Named connections: how the library turns a block name from a template or a flag into a client.

Templates and CLI flags name their connections (``vaultBlock: team-vault``,
``--cluster-block staging``); the credentials live in Prefect Blocks (``blocks/``), which sit
*above* the library (they build on its clients: ``RegistryAccess``, ``VaultSecretReader``, ...).
So the library never imports ``blocks``: it is handed a :class:`ConnectionSource` (inside
:class:`envforge.services.Services`) by the composition root (the flows, the CLI), which
resolves a name (or ``None``: the service's own environment variables) to the plain settings or
clients defined here, in envforge. ``blocks.loader.BlockConnections`` is the source that loads
Prefect Blocks; tests hand in that one or a fake. There is no process-wide source to find.

Errors: a name that cannot be resolved is a :class:`~envforge.errors.ConfigurationError` naming
the block type and the name, raised by the source.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # types only: the areas import this module, not the other way round
    from envforge.db.connection import ServerAddress
    from envforge.images.git_auth import GitAuth
    from envforge.images.registry_client import RegistryAccess
    from envforge.secrets.vault import VaultSecretReader
    from envforge.summary.comments import PullRequestCommenter
    from envforge.summary.pr_status import PullRequestStatusReporter
    from envforge.webhooks.server import WebhookCredentials


@dataclass(frozen=True)
class KubernetesConnection:
    """A configured kubernetes ``ApiClient`` and how to describe it without credentials."""

    api_client: Any
    description: str
    request_timeout_seconds: float


class DatabaseServerSource(Protocol):
    """A PostgreSQL server: the address of one of its databases (default: maintenance db)."""

    def address(self, database: str | None = None) -> ServerAddress:
        """Address of ``database`` on the server (default: its maintenance database)."""
        ...


class ConnectionSource(Protocol):
    """Resolves connection names to clients and settings; ``None`` means "from the environment".

    Every method raises ConfigurationError, naming the block type and name, when it cannot.
    """

    def vault_reader(self, name: str | None) -> VaultSecretReader:
        """A logged-in per-run reader of Vault KV secrets (VaultConnection)."""
        ...

    def kubernetes_cluster(self, name: str | None) -> KubernetesConnection:
        """A Kubernetes API client (KubernetesCluster; default KUBECONFIG or in-cluster)."""
        ...

    def database_server(self, name: str | None) -> DatabaseServerSource:
        """A PostgreSQL server (DatabaseServer; default PG* variables)."""
        ...

    def anonymisation_key(self, name: str | None) -> bytes:
        """The anonymisation key (AnonymisationKey; default ENVFORGE_ANONYMISATION_KEY)."""
        ...

    def image_registry(self, name: str) -> RegistryAccess:
        """Address and login of a container image registry (ContainerRegistry)."""
        ...

    def git_auth(self, name: str) -> GitAuth:
        """HTTPS token or SSH key for a Git repository (GitCredentials)."""
        ...

    def pull_request_commenter(self, name: str) -> AbstractContextManager[PullRequestCommenter]:
        """A commenter on GitHub/GitLab pull requests, closed on exit (GitProviderToken)."""
        ...

    def pull_request_status(self, name: str
                            ) -> AbstractContextManager[PullRequestStatusReporter]:
        """Sets environment states on GitHub/GitLab, closed on exit (GitProviderToken)."""
        ...

    def webhook_credentials(self, name: str) -> WebhookCredentials:
        """The secrets webhook deliveries are signed with (WebhookSecrets)."""
        ...

    def block_types(self) -> list[Any]:
        """Every block type, for ``envforge blocks list|register``."""
        ...
