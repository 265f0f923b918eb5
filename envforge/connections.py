"""Named connections: how the library turns a block name from a template or a flag into a client.

Templates and CLI flags name their connections (``vaultBlock: team-vault``,
``--cluster-block staging``); the credentials live in Prefect Blocks (``blocks/``), which sit
*above* the library (they build on its clients: ``RegistryAccess``, ``VaultSecretReader``, ...).
So the library never imports ``blocks``: it asks the one :class:`ConnectionSource` installed in
the process, which resolves a name (or ``None``: the service's own environment variables) to
the plain settings or clients defined here, in envforge. Prefect's own collections are wired the
same way, through a packaging entry point.

Which source is used, in order:

1. the one installed with :func:`use_connection_source` (tests install fakes this way);
2. the entry point of group ``envforge.connections`` (pyproject: ``blocks.loader:BlockConnections``,
   which loads Prefect Blocks; ``pip install -e .`` registers it).

Errors: a name that cannot be resolved is a :class:`~envforge.errors.ConfigurationError` naming
the block type and the name, raised by the source.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from envforge.errors import ConfigurationError

if TYPE_CHECKING:  # types only: the areas import this module, not the other way round
    from envforge.db.connection import ServerAddress
    from envforge.images.git_auth import GitAuth
    from envforge.images.registry_client import RegistryAccess
    from envforge.secrets.vault import VaultSecretReader
    from envforge.summary.comments import PullRequestCommenter
    from envforge.summary.pr_status import PullRequestStatusReporter
    from envforge.webhooks.server import WebhookCredentials

ENTRY_POINT_GROUP = "envforge.connections"


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


_lock = threading.Lock()
_installed: ConnectionSource | None = None


def use_connection_source(source: ConnectionSource | None) -> None:
    """Install ``source`` for this process (``None``: back to the entry point's source)."""
    global _installed
    with _lock:
        _installed = source


def connection_source() -> ConnectionSource:
    """The installed source, else the one registered under the ``envforge.connections`` entry
    point (loaded once)."""
    global _installed
    with _lock:
        if _installed is None:
            found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
            if not found:
                raise ConfigurationError(
                    f"no connection source: no '{ENTRY_POINT_GROUP}' entry point is installed; "
                    "reinstall envforge ('pip install -e .') so Prefect Blocks can be loaded")
            _installed = found[0].load()()
        assert _installed is not None
        return _installed


@contextmanager
def connection_source_installed(source: ConnectionSource) -> Iterator[ConnectionSource]:
    """Use ``source`` inside the block, then restore the previous one (for tests)."""
    global _installed
    with _lock:
        previous, _installed = _installed, source
    try:
        yield source
    finally:
        with _lock:
            _installed = previous
