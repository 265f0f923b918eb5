"""Every lifecycle flow run keeps the fleet artifact current and links to it from its summary:
the create, extend and destroy flows on a real temporary Prefect server and a real Git
remote."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from envforge.summary.artifact import artifact_key
from envforge.summary.fleet import FLEET_ARTIFACT_KEY
from tests.integration.lifecycle.conftest import gitops

__all__ = ["gitops"]

pytestmark = pytest.mark.prefect


def _latest(key: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC, limit=1)
    assert found, f"no artifact {key}"
    return found[0]


def _rows() -> list[dict[str, str]]:
    data = _latest(FLEET_ARTIFACT_KEY).data
    rows: list[dict[str, str]] = json.loads(data) if isinstance(data, str) else data
    return rows


def test_create_and_destroy_republish_the_fleet_and_summaries_link_to_it(
        prefect_server: None, gitops: Path) -> None:
    from prefect.settings import PREFECT_UI_URL, temporary_settings

    from flows.environments import create_environment, destroy_environment, extend_environment

    name = f"pr-9-{uuid.uuid4().hex[:6]}"
    # the test server serves no UI; a run's UI address is what the summary's link is made of
    with temporary_settings({PREFECT_UI_URL: "http://127.0.0.1:4200"}):
        create_environment(name, template="python-service", parameters={"replicas": 1},
                           ttl="2h", source={"repository": "https://git.example/acme/app.git",
                                             "pullRequest": 9})
    [row] = [r for r in _rows() if r["environment"] == name]
    assert row["template"] == "python-service" and row["pull request"] == "acme/app#9"
    assert row["URL"].startswith(f"https://{name}-")
    assert row["state"] in {"healthy", "unknown", "progressing", "expiring"}  # no Argo CD here
    summary = _latest(artifact_key(name)).data
    assert f"(http://127.0.0.1:4200/artifacts/key/{FLEET_ARTIFACT_KEY})" in summary

    extend_environment(name, ttl="72h")  # the new expiry shows in the table at once
    [extended] = [r for r in _rows() if r["environment"] == name]
    assert extended["expires"] != row["expires"] and extended["state"] != "expiring"

    destroy_environment(name)
    assert name not in [r["environment"] for r in _rows()]
