"""`envforge webhook serve` as a process: real port, real Prefect server, SIGTERM to stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.webhooks.conftest import StubDeployments
from tests.unit.webhooks.payloads import github_pull_request, signed_github

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

SECRET = "cli-process-secret-9"


def test_serve_starts_a_run_and_never_logs_the_secret(
        stub_deployments: StubDeployments, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("repositories:\n  acme/orders-api: python-service\n")
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "ENVFORGE_GITHUB_WEBHOOK_SECRET": SECRET}
    env.pop("ENVFORGE_GITLAB_WEBHOOK_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from envforge.cli import main; sys.exit(main())", "-v", "webhook", "serve", "--port", "0",
         "--mapping", str(mapping), "--create-deployment", stub_deployments.create,
         "--destroy-deployment", stub_deployments.destroy],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+) \(github\)", line)
        assert match, line
        url = match[1]
        body, headers = signed_github(github_pull_request("opened", number=401), SECRET)
        response = httpx.post(f"{url}/webhooks/github", content=body, headers=headers,
                              timeout=30)
        assert response.status_code == 202, response.text
        assert response.json()["deployment"] == stub_deployments.create
        _, wrong = signed_github(github_pull_request("opened", number=401), "nope")
        assert httpx.post(f"{url}/webhooks/github", content=body, headers=wrong).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        deadline = stopping + 30  # Prefect drains its workers at exit; slower under load
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=10)
        took = time.monotonic() - stopping
    assert process.returncode == 0, f"no clean exit within {took:.1f} s of SIGTERM: {stderr[-2000:]}"
    assert "/webhooks/github -> 202" in stderr and "/webhooks/github -> 401" in stderr
    assert SECRET not in stderr
