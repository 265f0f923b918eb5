"""The fleet in the Prefect UI: environments made and put to sleep through the CLI on a real
bare GitOps remote, the fleet table artifact published to a real Prefect server with its UI
(``prefect server start``), read back through the API, then seen by a person: headless
Chromium (Debian's, driven by Playwright) opens a run's summary artifact, follows its link to
the fleet and finds every environment with its state. ENVFORGE_SAVE_SCREENSHOTS=1 refreshes
docs/images/fleet.png."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from uuid import uuid4

import pytest

from envforge.cli import main
from envforge.core.config import PROJECT_ROOT
from envforge.gitops.repository import open_store
from envforge.summary.artifact import artifact_key, publish_summary_artifact
from envforge.summary.fleet import FLEET_ARTIFACT_KEY, refresh_fleet_artifact, with_fleet_link
from envforge.summary.model import EnvironmentSummary
from tests.helpers import write_template
from tests.integration.forms.test_browser_form import CHROMIUM, CHROMIUM_ARGS, prefect_ui

__all__ = ["prefect_ui"]

pytestmark = [pytest.mark.slow]

SCREENSHOT = PROJECT_ROOT / "docs" / "images" / "fleet.png"
TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: web}
spec:
  owner: group:platform
  type: service
  parameters:
    properties:
      replicas: {type: integer, default: 1}
  steps:
    - id: fetch
      action: fetch:template
      input: {url: ./skeleton, values: {replicas: "${{ parameters.replicas }}"}}
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: ${{ values.replicas }}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: registry.local/app:latest}]
"""


def _latest_table(api: str) -> list[dict[str, str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[FLEET_ARTIFACT_KEY])),
            sort=ArtifactSort.CREATED_DESC, limit=1)
    assert artifacts and artifacts[0].type == "table"
    data = artifacts[0].data
    rows: list[dict[str, str]] = json.loads(data) if isinstance(data, str) else data
    return rows


def _publish(api: str, health: dict[str, str]) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), open_store() as store:
        refresh_fleet_artifact(store, health)


def _publish_run_summary(api: str, ui: str, name: str) -> None:
    """A lifecycle run's summary of ``name`` as the flows publish it (with the fleet link
    made from the run's page in this UI)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    summary = EnvironmentSummary(name, "completed", template="web", operation="create",
                                 run_url=f"{ui}/runs/flow-run/{uuid4()}")
    with temporary_settings({PREFECT_API_URL: api}):
        publish_summary_artifact(with_fleet_link(summary))


def _open_latest(summary_page: str, description: str, expected: list[str],
                 screenshot: Path) -> str:
    """What a person does: open a run's summary artifact, follow its link to all
    environments, see the latest version's description, click the latest version, read the
    table."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(summary_page, wait_until="networkidle", timeout=60_000)
            page.locator("a[href*='/artifacts/artifact/']").first.click()  # its latest run
            fleet = page.get_by_role("link", name="All environments (fleet)")
            fleet.wait_for(timeout=30_000)
            assert (fleet.get_attribute("href") or "").endswith(
                f"/artifacts/key/{FLEET_ARTIFACT_KEY}")
            if fleet.get_attribute("target") == "_blank":  # the UI opens links in a new tab
                with page.context.expect_page(timeout=30_000) as opened:
                    fleet.click()
                page = opened.value
            else:
                fleet.click()
            page.wait_for_url(f"**/artifacts/key/{FLEET_ARTIFACT_KEY}", timeout=30_000,
                              wait_until="commit")
            page.get_by_text(description, exact=True).wait_for(timeout=30_000)
            # the versions, newest first: each a link to its artifact page
            page.locator("a[href*='/artifacts/artifact/']").first.click()
            for text in expected:
                page.get_by_text(text, exact=True).first.wait_for(timeout=30_000)
            page.screenshot(path=str(screenshot))
            return str(page.inner_text("body"))
        finally:
            browser.close()


@pytest.mark.timeout(300)
def test_the_fleet_table_follows_the_environments_and_shows_in_the_ui(
        prefect_ui: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap.sh)")
    root = tmp_path / "templates"
    write_template(root / "web", TEMPLATE, {"skeleton/manifests/deployment.yaml": DEPLOYMENT})
    monkeypatch.setenv("ENVFORGE_TEMPLATES_PATH", str(root))
    api = f"{prefect_ui}/api"
    for name in ("fleet-a", "fleet-b"):
        assert main(["env", "create", name, "--template", "web", "--ttl", "48h"]) == 0

    _publish(api, {"fleet-a": "Healthy", "fleet-b": "Healthy"})
    rows = _latest_table(api)
    assert [(r["environment"], r["state"], r["template"]) for r in rows] == [
        ("fleet-a", "healthy", "web"), ("fleet-b", "healthy", "web")]
    assert rows[0]["URL"].startswith("https://fleet-a") and rows[0]["awake this week"]

    # a lifecycle change, then the next run's refresh: the same artifact, a new version
    assert main(["env", "sleep", "fleet-b"]) == 0
    assert main(["env", "destroy", "fleet-a"]) == 0
    _publish(api, {"fleet-b": "Healthy"})
    rows = _latest_table(api)
    assert [(r["environment"], r["state"]) for r in rows] == [("fleet-b", "sleeping")]

    assert main(["env", "create", "fleet-c", "--template", "web", "--ttl", "2h"]) == 0
    _publish(api, {"fleet-b": "Healthy", "fleet-c": "Degraded"})
    shot = tmp_path / "fleet.png"
    _publish_run_summary(api, prefect_ui, "fleet-c")
    text = _open_latest(f"{prefect_ui}/artifacts/key/{artifact_key('fleet-c')}",
                        "envforge fleet: 2 environment(s): 1 failed, 1 sleeping",
                        ["fleet-b", "fleet-c", "sleeping", "failed"], shot)
    assert "fleet-a" not in text  # destroyed: not in the latest version
    assert "awake this week" in text.lower()
    assert shot.stat().st_size > 10_000
    if os.environ.get("ENVFORGE_SAVE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
