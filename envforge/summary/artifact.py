"""Publishing an environment summary as a Prefect markdown artifact (key ``env-<name>``).

Called inside a flow run, Prefect links the artifact to that run; the key groups every run's
summary of one environment under one artifact history in the UI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from envforge.errors import SummaryError
from envforge.summary.model import EnvironmentSummary
from envforge.summary.render import render_summary


def artifact_key(name: str) -> str:
    """``env-<name>`` in the alphabet Prefect accepts for keys (lowercase, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "unnamed"
    return f"env-{slug}"


def publish_summary_artifact(summary: EnvironmentSummary | Mapping[str, Any],
                             secret_values: Iterable[str] = ()) -> UUID:
    """Render ``summary`` and store it as a markdown artifact; returns the artifact id."""
    from prefect.artifacts import create_markdown_artifact

    if not isinstance(summary, EnvironmentSummary):
        summary = EnvironmentSummary.from_dict(summary)
    markdown = render_summary(summary, secret_values)
    try:
        artifact_id = create_markdown_artifact(
            markdown=markdown,
            key=artifact_key(summary.name),
            description=f"envforge environment {summary.name}: {summary.status}",
        )
    except Exception as e:  # Prefect client/transport errors, wrapped at this one boundary
        raise SummaryError(
            f"environment {summary.name!r}: the summary artifact could not be stored "
            f"({type(e).__name__}: {e}); check PREFECT_API_URL"
        ) from e
    return UUID(str(artifact_id))
