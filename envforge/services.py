"""The services object: everything a run is handed instead of finding it itself.

One frozen :class:`Services` carries the settings (:mod:`envforge.settings`), the connection
source that turns block names into clients (:class:`~envforge.connections.ConnectionSource`),
the capabilities actions may use (:mod:`envforge.capabilities`: egress client, workspace files,
caches), the step listeners that watch a run, the checks rendered manifests pass before a
commit and the scrubber of fetched secret values. It is built in exactly two places, the
composition roots, both through :func:`envforge.composition.build_services`:

* the flows (``flows/services.py``: the settings and Prefect Blocks, ``blocks.loader``);
* the CLI (``envforge/cli/services.py``: the same, from the settings and the blocks a flag
  names).

and handed down: ``plan_environment(..., services)``, ``TemplateRun(..., services=...)``,
``ActionContext.services``, ``open_store(..., connections=...)``, ``open_cluster(connections)``.
Nothing below the composition roots reads the environment, loads a Block or keeps a global.

When the CLI runs a flow in-process (``envforge run``), it hands its services to that flow with
:func:`services_provided`; only the flows' composition root reads :func:`provided_services`
(a unit test checks that), so this is a hand-over between the two roots, not a locator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from envforge.capabilities import Capabilities
from envforge.connections import ConnectionSource
from envforge.errors import ConfigurationError
from envforge.settings import EnvforgeSettings

#: Called with each step report of a run (the CLI prints its progress lines with one).
StepListener = Callable[[Any], None]
#: A check of rendered manifests against a live API server, run after the offline ones pass:
#: (file, object) pairs in, problems out (the cluster area's server-side dry run is one).
ManifestCheck = Callable[[list[tuple[str, dict[str, Any]]]], list[str]]


@dataclass(frozen=True)
class Services:
    """What the composition root hands down to the planner, the runner and every action.

    Built by :func:`envforge.composition.build_services` (which wires the parts from the
    areas: the cluster's server-side dry run, the secrets area's scrubber); tests may build
    one directly with only what they need.
    """

    settings: EnvforgeSettings
    connections: ConnectionSource
    capabilities: Capabilities = field(repr=False)
    step_listeners: tuple[StepListener, ...] = ()
    #: run on rendered manifests before they are committed (after the offline validation)
    manifest_checks: tuple[ManifestCheck, ...] = ()
    #: replaces secret values fetched in this process with a mask (commit guard, errors)
    scrub: Callable[[str], str] | None = field(default=None, repr=False)
    #: values for ``${{ secrets.NAME }}`` the CLI was given (``envforge run --secret``); a run
    #: takes them (envforge.run.run_secrets); never a flow parameter
    run_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    def with_listeners(self, *listeners: StepListener) -> Services:
        """The same services, with ``listeners`` added to the step listeners."""
        return replace(self, step_listeners=(*self.step_listeners, *listeners))

    def notify_step(self, report: Any) -> None:
        """Pass one step report to every listener."""
        for listener in self.step_listeners:
            listener(report)


def require_connections(services: Services | None, where: str) -> ConnectionSource:
    """The connection source of ``services``; a ConfigurationError naming ``where`` when the
    caller handed none (a library call made outside the flows and the CLI)."""
    if services is None:
        raise ConfigurationError(
            f"{where} needs connections (blocks or the service's own variables) but was given "
            "no services: run it through the flows or the envforge CLI, or pass services built "
            "with envforge.composition.build_services")
    return services.connections


_provided: ContextVar[Services | None] = ContextVar("envforge_services", default=None)


@contextmanager
def services_provided(services: Services) -> Iterator[Services]:
    """Within the block, a flow started in this context (the CLI's in-process run) uses
    ``services`` instead of building its own."""
    token = _provided.set(services)
    try:
        yield services
    finally:
        _provided.reset(token)


def provided_services() -> Services | None:
    """The services the CLI handed to the flow it runs in-process, if any (flows/ only)."""
    return _provided.get()
