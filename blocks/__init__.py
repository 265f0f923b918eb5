"""Prefect Block types of envforge: where connection details and credentials live.

Each module listed in BLOCK_MODULES exposes ``BLOCK_TYPES: list[type[Block]]``;
``envforge blocks register`` registers them all with the Prefect server.
"""

from __future__ import annotations

import importlib
from typing import Any

BLOCK_MODULES: tuple[str, ...] = ("blocks.container_registry", "blocks.git", "blocks.vault",
                                  "blocks.kubernetes", "blocks.database", "blocks.webhooks")


def block_types() -> list[Any]:
    """Every envforge Block class, in registration order."""
    found: list[Any] = []
    for module_name in BLOCK_MODULES:
        found.extend(importlib.import_module(module_name).BLOCK_TYPES)
    return found
