"""The CLI's composition root: the services a command hands down.

A command that needs services gets them from ``args.make_services()`` (set by
``envforge.cli.build_parser``): the settings and Prefect Blocks (unnamed: each service's own
variables), wired by :func:`envforge.composition.build_services` the same way the flows do.
The console script is the top of the program, so this is the one module of the library that
imports ``blocks`` and ``flows`` (the contract's listed exceptions in pyproject.toml): blocks on
the first connection a command asks for, so commands that need none do not pay for importing
Prefect, and the run-template flow that ``envforge run`` runs in-process.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from envforge.composition import build_services
from envforge.connections import ConnectionSource, DatabaseServerSource, KubernetesConnection
from envforge.services import Services, StepListener
from envforge.settings import EnvforgeSettings, load_settings

if TYPE_CHECKING:
    from envforge.images.git_auth import GitAuth
    from envforge.images.registry_client import RegistryAccess
    from envforge.secrets.vault import VaultSecretReader
    from envforge.summary.comments import PullRequestCommenter
    from envforge.summary.pr_status import PullRequestStatusReporter
    from envforge.webhooks.server import WebhookCredentials


class BlocksOnFirstUse:
    """``blocks.loader.BlockConnections``, imported when a command first asks for one."""

    def __init__(self, settings: EnvforgeSettings | None = None) -> None:
        self._settings = settings
        self._source: ConnectionSource | None = None

    def _blocks(self) -> ConnectionSource:
        if self._source is None:
            from blocks.loader import BlockConnections  # the composition root: see above

            self._source = BlockConnections(self._settings)
        return self._source

    def vault_reader(self, name: str | None) -> VaultSecretReader:
        return self._blocks().vault_reader(name)

    def kubernetes_cluster(self, name: str | None) -> KubernetesConnection:
        return self._blocks().kubernetes_cluster(name)

    def database_server(self, name: str | None) -> DatabaseServerSource:
        return self._blocks().database_server(name)

    def anonymisation_key(self, name: str | None) -> bytes:
        return self._blocks().anonymisation_key(name)

    def image_registry(self, name: str) -> RegistryAccess:
        return self._blocks().image_registry(name)

    def git_auth(self, name: str) -> GitAuth:
        return self._blocks().git_auth(name)

    def pull_request_commenter(self, name: str) -> AbstractContextManager[PullRequestCommenter]:
        return self._blocks().pull_request_commenter(name)

    def pull_request_status(self, name: str
                            ) -> AbstractContextManager[PullRequestStatusReporter]:
        return self._blocks().pull_request_status(name)

    def webhook_credentials(self, name: str) -> WebhookCredentials:
        return self._blocks().webhook_credentials(name)

    def block_types(self) -> list[Any]:
        return self._blocks().block_types()


def cli_services(settings: EnvforgeSettings | None = None,
                 step_listeners: tuple[StepListener, ...] = ()) -> Services:
    """Services for one command: ``settings`` (default: the process's), Prefect Blocks."""
    settings = settings or load_settings()
    return build_services(settings, BlocksOnFirstUse(settings), step_listeners)


def run_template_flow() -> Any:
    """The ``run-template`` Prefect flow, which ``envforge run`` runs in this process (handing
    it these services with :func:`envforge.services.services_provided`)."""
    from flows.run_template import run_template  # the composition root: see the docstring

    return run_template
