"""A person makes an environment from the Prefect UI: headless Chromium (Debian's, driven by
Playwright; no browser download) opens the form of ``create-environment/preview-app`` on a
Prefect server with its UI, fills it in, submits; a process worker runs the flow run; the
image is built and pushed, and the environment is committed to the GitOps repository.

The session's ``prefect_server`` (prefect_test_harness) serves the API only (it sets
PREFECT_UI_ENABLED=0), so this test starts ``prefect server start`` itself, on 127.0.0.1, and
stops it by pid. Set ENVFORGE_SAVE_SCREENSHOTS=1 to refresh docs/images/environment-form.png.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from envforge.core.config import PROJECT_ROOT
from tests.helpers import git, remote_files
from tests.integration.images.conftest import (
    Registry,
    base_image,
    buildah_storage,
    builder,
    free_port,
    make_repo,
    registry,
)
from tests.integration.lifecycle.conftest import gitops

__all__ = ["base_image", "buildah_storage", "builder", "gitops", "make_repo", "registry"]

pytestmark = [pytest.mark.slow, pytest.mark.buildah]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
POOL = "forms-process"
SCREENSHOT = PROJECT_ROOT / "docs" / "images" / "environment-form.png"


@pytest.fixture
def prefect_ui(tmp_path: Path) -> Iterator[str]:
    """``prefect server start`` with its UI on a free port (SQLite in tmp_path); its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_API_DATABASE_CONNECTION_URL":
               f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
           "PREFECT_UI_API_URL": f"{url}/api", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    log = (tmp_path / "prefect-server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("prefect server did not start: "
                                     + (tmp_path / "prefect-server.log").read_text()[-2000:])
            time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and its children
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


def _field(page: Any, title: str) -> Any:
    """The input area of the form field whose label is exactly ``title``."""
    return page.locator(
        "xpath=//div[contains(@class,'schema-form-property')][./div[contains(@class,"
        "'p-label__header')]//span[contains(@class,'schema-form-property__label') and "
        f"normalize-space()='{title}']]/div[contains(@class,'p-label__body')]")


def _fill_and_submit(run_page: str, values: dict[str, str], screenshot: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # tall enough for the whole form: the UI scrolls inside its own container
            page = browser.new_page(viewport={"width": 1280, "height": 3000})
            page.goto(run_page, wait_until="networkidle", timeout=60_000)
            page.get_by_role("button", name="Submit").wait_for(timeout=60_000)
            _field(page, "Environment name").locator("textarea").fill(values["name"])
            _field(page, "Owner (Optional)").locator("textarea").fill("group:forms")
            _field(page, "Pull request (Optional)").locator("input").fill("12")
            _field(page, "Repository").locator("textarea").fill(values["repoUrl"])
            _field(page, "Image registry (Optional)").locator("textarea").fill(
                values["imageRegistry"])
            # Prefect's select opens on the keyboard (a click does not, headless)
            _field(page, "Database (Optional)").locator("button").last.focus()
            page.keyboard.press("Space")
            page.get_by_role("option", name="none", exact=True).click()
            switch = _field(page, "Secrets from Vault (Optional)").get_by_role("switch")
            switch.click()
            # the UI updates after the click: wait for it (as a person looks), up to 10 s
            expect(switch).to_have_attribute("aria-checked", "false", timeout=10_000)
            _field(page, "Environment name").scroll_into_view_if_needed()
            page.wait_for_timeout(500)  # the switch's animation
            page.screenshot(path=str(screenshot))
            page.get_by_role("button", name="Submit").click()
            page.wait_for_url(lambda url: not url.endswith("/run"), timeout=30_000)
        finally:
            browser.close()


def _wait_final(client: Any, flow_run_id: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {flow_run_id} not finished after {seconds} s")


@pytest.mark.timeout(600)
def test_environment_from_the_prefect_ui_form(
        prefect_ui: str, gitops: Path, registry: Registry, base_image: str,
        buildah_storage: Path, make_repo: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap.sh)")
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from envforge.environments.deployments import register_template_deployments
    from envforge.templating.loader import TemplateCatalog

    app = make_repo({"Dockerfile": f"FROM {base_image}\nCOPY index.html /www/index.html\n",
                     "index.html": "<p>form</p>\n"}, name="shop")
    monkeypatch.setenv("ENVFORGE_BUILDAH_ROOT", str(buildah_storage))
    name = f"form-{uuid.uuid4().hex[:6]}"
    api = f"{prefect_ui}/api"
    template = TemplateCatalog([PROJECT_ROOT / "templates"]).load("preview-app")
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"), overwrite=True)
        [_, registered] = register_template_deployments(
            [(template, str(template.directory))], work_pool=POOL)
        assert registered.name == "create-environment/preview-app"

        shot = tmp_path / "environment-form.png"
        _fill_and_submit(f"{prefect_ui}/deployments/deployment/{registered.id}/run",
                         {"name": name, "repoUrl": app.as_uri(),
                          "imageRegistry": registry.access.address}, shot)
        assert shot.stat().st_size > 10_000
        if os.environ.get("ENVFORGE_SAVE_SCREENSHOTS") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)

        [run] = client.read_flow_runs(deployment_filter=DeploymentFilter(
            id=DeploymentFilterId(any_=[registered.id])))
        # what the form sent: the environment's fields and the template's, typed
        assert run.parameters["name"] == name and run.parameters["owner"] == "group:forms"
        assert run.parameters["source"] == {"pullRequest": 12}
        assert run.parameters["database"] == "none" and run.parameters["vaultSecrets"] is False
        assert run.parameters["repoUrl"] == app.as_uri() and run.parameters["port"] == 8080

        worker = subprocess.run(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
             "--type", "process", "--run-once"],
            env={**os.environ, "PREFECT_API_URL": api}, cwd=PROJECT_ROOT,
            capture_output=True, text=True, timeout=420)
        finished = _wait_final(client, run.id, 60)
        assert finished.state is not None
        assert finished.state.is_completed(), (finished.state, worker.stdout[-4000:],
                                               worker.stderr[-4000:])

    files = remote_files(gitops)
    assert f"environments/{name}/environment.yaml" in files
    record = git("--git-dir", str(gitops), "show",
                 f"main:environments/{name}/environment.yaml")
    assert "template: preview-app" in record and "pullRequest: 12" in record
    assert "owner: group:forms" in record
    manifests = [f for f in files if f.startswith(f"environments/{name}/")]
    deployment = next(f for f in manifests if f.endswith("deployment.yaml"))
    image_line = next(line for line in git("--git-dir", str(gitops), "show",
                                           f"main:{deployment}").splitlines()
                      if "image:" in line)
    assert registry.access.address in image_line and "@sha256:" in image_line
