"""A create of preview-app through the lifecycle flow on a real temporary Prefect server: the
image build, the database and the Vault secrets run as task runs whose intervals overlap (read
back through the Prefect API), and the steps that read their outputs start after them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest

from tests.integration.e2e.conftest import World

pytestmark = [pytest.mark.prefect, pytest.mark.buildah, pytest.mark.postgres, pytest.mark.slow]


def _task_runs(flow_run_id: Any) -> dict[str, tuple[datetime, datetime, datetime]]:
    """Task-run name -> (start, end, created) of one flow run's task runs, from the Prefect
    API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> dict[str, tuple[datetime, datetime, datetime]]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        return {r.name: (r.start_time, r.end_time, r.created) for r in runs
                if r.start_time is not None and r.end_time is not None and r.created}

    return asyncio.run(read())


def test_image_database_and_secrets_overlap_in_the_prefect_timeline(
        prefect_server: None, world: World) -> None:
    from flows.environments import create_environment

    # The seed of preview-app's small schema can be over in a tenth of a second, before a
    # sibling task run has even started, so nothing would show whether they ran side by side:
    # the test's private copy of the template makes the seed last two seconds.
    schema = world.templates / "preview-app" / "db" / "schema.sql"
    schema.write_text(schema.read_text() + "\nSELECT pg_sleep(2);\n")
    name = f"par-{uuid.uuid4().hex[:6]}"
    state = create_environment(
        name, template="preview-app", return_state=True,
        parameters={"repoUrl": world.app_repo.as_uri(), "registryTls": False,
                    "imageRegistry": world.registry.access.address, "database": "seed"})
    result = state.result()
    steps = {s["id"]: s["status"] for s in result["run"]["steps"]}
    assert steps["image"] == steps["database-seed"] == steps["secrets"] == "completed"

    runs = _task_runs(state.state_details.flow_run_id)
    image, database, secrets = runs["image"], runs["database-seed"], runs["secrets"]
    trio = (image, database, secrets)
    # the image build and the database seed (both seconds long) were submitted together, and
    # each of the three was submitted before the last of the other two ended (run one after
    # another, the later ones could not be). Submission (the task run's creation) is what shows
    # that the engine did not wait: a task run's start can lag it by a second or more (a tag
    # concurrency slot, a machine loaded by parallel test workers), and the Vault read is the
    # real OpenBao's, a few milliseconds, over before a sibling has started.
    assert max(image[2], database[2]) < min(image[1], database[1]), runs
    for step in trio:
        assert step[2] < max(other[1] for other in trio if other is not step), runs
    # and the order that matters is kept: the Secret after its fetch, the manifests after the
    # image (they read its digest) and the secrets (both write the workspace), publishing last
    assert runs["deliver"][0] >= secrets[1]
    assert runs["fetch-manifests"][0] >= max(image[1], secrets[1])
    made = ("image", "database-seed", "secrets", "deliver", "fetch-manifests")
    assert runs["environment"][0] >= max(runs[step][1] for step in made)  # publish:gitops
