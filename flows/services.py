"""The flows' composition root: the services every flow run hands down.

A flow run builds its :class:`~envforge.services.Services` once, here, from the settings and
Prefect Blocks (``blocks.loader.services_from_blocks``), unless the CLI started the flow
in-process and handed its own (``envforge run``: the CLI's step listeners print progress).
Everything below gets the services as an argument.
"""

from __future__ import annotations

from blocks.loader import services_from_blocks
from envforge.services import Services, provided_services


def flow_services() -> Services:
    """The services of this flow run: the CLI's when it runs the flow in-process, else built
    from the settings and Prefect Blocks."""
    return provided_services() or services_from_blocks()
