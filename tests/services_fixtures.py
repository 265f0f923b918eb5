"""Services for tests, built the way the composition roots build them, without patching the
process environment: ``make_services({"ENVFORGE_...": ...})`` reads only the mapping given."""

from __future__ import annotations

from collections.abc import Mapping

from blocks.loader import BlockConnections
from envforge.composition import build_services
from envforge.connections import ConnectionSource
from envforge.services import Services
from envforge.settings import EnvforgeSettings, load_settings


def make_services(environ: Mapping[str, str] | None = None,
                  connections: ConnectionSource | None = None) -> Services:
    """Services from ``environ`` (default: the process's settings, which the session's
    conftest keeps per test) and ``connections`` (default: Prefect Blocks, unnamed ones from
    each service's own variables)."""
    settings = load_settings() if environ is None else EnvforgeSettings.from_environ(environ)
    return build_services(settings, BlockConnections() if connections is None else connections)
