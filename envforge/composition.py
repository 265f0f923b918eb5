"""Wiring the services: the one function both composition roots build theirs with.

:func:`build_services` takes the settings and a connection source (Prefect Blocks in the flows
and the CLI, a fake in tests) and wires in what the areas contribute, explicitly instead of by
registration at import: the cluster's server-side dry run as a manifest check, the secrets
area's scrubber for the commit guard, the capabilities the settings configure. It sits at the
top of the library's layers (below only the CLI) because it names parts of every area.
"""

from __future__ import annotations

from typing import Any

from envforge.capabilities import Capabilities
from envforge.connections import ConnectionSource
from envforge.secrets.redaction import default_redactor
from envforge.services import ManifestCheck, Services, StepListener
from envforge.settings import ClusterSection, EnvforgeSettings


def build_services(settings: EnvforgeSettings, connections: ConnectionSource,
                   step_listeners: tuple[StepListener, ...] = ()) -> Services:
    """Services for one flow run or one command."""
    return Services(
        settings=settings,
        connections=connections,
        capabilities=Capabilities.from_settings(settings),
        step_listeners=step_listeners,
        manifest_checks=(_server_dry_run(connections, settings.cluster),),
        scrub=default_redactor().scrub,
    )


def _server_dry_run(connections: ConnectionSource, settings: ClusterSection) -> ManifestCheck:
    """The cluster area's server-side dry run, imported when manifests are first checked (it
    loads the Kubernetes client, which most commands never need)."""

    def check(objects: list[tuple[str, dict[str, Any]]]) -> list[str]:
        from envforge.cluster.dry_run import server_dry_run_check

        return server_dry_run_check(connections, settings)(objects)

    return check
