"""``database: container`` end to end on the real node: preview-app with the demo's Go app
(templates/preview-app/app), its own PostgreSQL as a StatefulSet in its namespace (the image of
scripts/services/images.sh postgres), seeded with the template's seed, its password generated
for the environment and delivered as a Secret; the URL answers through the ingress with the
rows of that container database; destroy removes it with the namespace. A missing database
image is a one-line error and leaves nothing behind."""

from __future__ import annotations

import base64
import os
import subprocess
import time
import urllib.error
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from envforge.core.config import PROJECT_ROOT
from envforge.images.builders import BuildahBuilder
from tests.helpers import git
from tests.integration.e2e.conftest import (
    World,
    cluster_secret,
    get_through_ingress,
    wait_synced_and_healthy,
)
from tests.integration.images.conftest import Registry

pytestmark = [pytest.mark.prefect, pytest.mark.buildah, pytest.mark.postgres, pytest.mark.slow]

APP_SOURCE = PROJECT_ROOT / "templates" / "preview-app" / "app"
IMAGES_SCRIPT = PROJECT_ROOT / "scripts" / "services" / "images.sh"


@pytest.fixture(scope="module")
def postgres_image(world_registry_host: str) -> str:
    """The PostgreSQL image of images.sh (built once per machine, minutes) in the registry."""
    image = f"{world_registry_host}/base/postgres:15"
    subprocess.run(["bash", str(IMAGES_SCRIPT), "push", "postgres", image], check=True,
                   capture_output=True, timeout=1500)
    return image


@pytest.fixture(scope="module")
def world_registry_host(registry: Registry) -> str:
    return registry.access.host


@pytest.fixture(scope="module")
def shop_image(world_registry_host: str, builder: BuildahBuilder,
               tmp_path_factory: pytest.TempPathFactory) -> str:
    """templates/preview-app/app (static Go) as a one-layer image in the registry."""
    base = tmp_path_factory.mktemp("shop")
    subprocess.run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(base / "shop"),
                    "."], cwd=APP_SOURCE, check=True, capture_output=True,
                   env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"})
    (base / "Containerfile").write_text('FROM scratch\nCOPY shop /shop\nUSER 10001\n'
                                        'ENTRYPOINT ["/shop"]\n')
    image = f"{world_registry_host}/demo/shop:1"
    options = builder.global_options()
    subprocess.run([*options, "bud", "--isolation", "chroot", "-t", image, "-f",
                    str(base / "Containerfile"), str(base)], check=True, capture_output=True)
    subprocess.run([*options, "push", "--tls-verify=false", image, f"docker://{image}"],
                   check=True, capture_output=True)
    return image


def _app_repo(world: World, shop_image: str, tmp_path: Path) -> Path:
    work, bare = tmp_path / "shop-work", tmp_path / "shop-db.git"
    git("init", "--quiet", "--initial-branch=main", str(work))
    (work / "Dockerfile").write_text(f"FROM {shop_image}\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "shop", cwd=work)
    git("clone", "--quiet", "--bare", str(work), str(bare))
    return bare


def _customers_page(world: World, url: str, seconds: float = 240) -> str:
    """The app's page once it answers 200 (503 while its database container still starts);
    the last answer is in the failure."""
    deadline = time.monotonic() + seconds
    last = ""
    while time.monotonic() < deadline:
        try:
            return get_through_ingress(world, url, seconds=5)
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}: {e.read().decode(errors='replace')[:300]}"
        time.sleep(1)
    raise AssertionError(f"{url} did not answer 200 in {seconds:.0f} s; last: {last}")


def _fail_after(directory: Path, after: str) -> None:
    """A step that fails when it runs (debug:wait refuses "never"), inserted after ``after``
    and depending on it (it reads its output), so it runs once that step completed."""
    path = directory / "template.yaml"
    template = yaml.safe_load(path.read_text())
    steps = template["spec"]["steps"]
    boom = {"id": "boom", "action": "debug:wait",
            "input": {"seconds": f"never${{{{ steps['{after}'].output.secretName }}}}"}}
    steps.insert(next(i for i, s in enumerate(steps) if s["id"] == after) + 1, boom)
    path.write_text(yaml.safe_dump(template, sort_keys=False))


def _databases(world: World) -> set[str]:
    with psycopg.connect(world.database.conninfo(), autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def _gitops_objects(world: World) -> str:
    return subprocess.run(["git", "--git-dir", str(world.gitops), "cat-file",
                           "--batch-all-objects", "--batch"], capture_output=True,
                          check=True).stdout.decode("utf-8", "replace")


@pytest.mark.timeout(2400)  # the 374 MB image: built once per machine, then copied and pulled
def test_an_environment_with_its_own_database_container(
        prefect_server: None, world: World, postgres_image: str, shop_image: str,
        tmp_path: Path) -> None:
    from flows.environments import create_environment, destroy_environment

    if world.cluster.plane.node_kind != "real":
        pytest.skip("no container runs on a kwok node (ENVFORGE_NODE=kwok)")
    name = f"dbc-{uuid.uuid4().hex[:6]}"
    database = f"envforge_{name.replace('-', '_')}"
    repo = _app_repo(world, shop_image, tmp_path)
    parameters: dict[str, Any] = {
        "repoUrl": repo.as_uri(), "imageRegistry": world.registry.access.address,
        "registryTls": False, "database": "container"}
    started = time.monotonic()
    created = create_environment(name, template="preview-app", parameters=parameters)
    created_at = time.monotonic()
    steps = {s["id"]: s["status"] for s in created["run"]["steps"]}
    assert steps["database-container"] == "completed" and steps["database-seed"] == "skipped"

    secret = cluster_secret(world, name, f"{name}-database")
    assert secret is not None and set(secret) == {"password", "seed.sql"}
    password = base64.b64decode(secret["password"]).decode()
    assert len(password) >= 32
    assert "CREATE TABLE public.customers" in base64.b64decode(secret["seed.sql"]).decode()
    assert password not in _gitops_objects(world) and password not in repr(created)
    assert not [d for d in _databases(world) if name.replace("-", "_") in d]  # scratch dropped

    status = wait_synced_and_healthy(world, name, seconds=900)
    synced = {(r["kind"], r["name"]) for r in status["resources"]}
    assert {("StatefulSet", f"{name}-db"), ("Service", f"{name}-db")} <= synced
    healthy_at = time.monotonic()
    page = _customers_page(world, created["url"])
    # docs/benchmarks.md (real node): shown with -rP
    seconds = {s["id"]: s.get("duration_s") for s in created["run"]["steps"]}
    print(f"create {created_at - started:.1f} s (database-container step "
          f"{seconds.get('database-container')} s), Synced+Healthy {healthy_at - created_at:.1f}"
          f" s later, first 200 {time.monotonic() - healthy_at:.1f} s after that")
    lines = page.splitlines()
    assert lines[0] == f"customers of {database} (50 in all, first 5):", page
    assert len(lines) == 6 and all(line.split("\t")[0].isdigit() for line in lines[1:])
    assert password not in page
    # the rows are the template's seed (seed 42): the same as db:seed makes on a server
    plane = world.cluster.plane
    counted = plane.kubectl("-n", name, "exec", f"{name}-db-0", "--",
                            "/usr/lib/postgresql/15/bin/psql", "-h", "/tmp", "-U", "postgres",
                            "-d", database, "-tA", "-c", "SELECT count(*) FROM public.orders")
    assert counted.stdout.strip() == "200"

    destroyed = destroy_environment(name)
    assert destroyed["problems"] == []
    done = plane.kubectl("wait", "--for=delete", f"namespace/{name}", "--timeout=300s",
                         check=False)
    assert done.returncode == 0 or "NotFound" in done.stderr, done.stderr


def test_a_missing_database_image_is_one_line_and_leaves_nothing(
        prefect_server: None, world: World, tmp_path: Path) -> None:
    from envforge.errors import StepFailedError
    from flows.environments import create_environment

    name = f"dbm-{uuid.uuid4().hex[:6]}"
    missing = f"{world.registry.access.host}/base/postgres:no-such-{name}"
    head = git("--git-dir", str(world.gitops), "rev-parse", "main")
    parameters: dict[str, Any] = {
        "repoUrl": world.app_repo.as_uri(), "imageRegistry": world.registry.access.address,
        "registryTls": False, "database": "container", "databaseImage": missing}
    with pytest.raises(StepFailedError) as info:
        create_environment(name, template="preview-app", parameters=parameters)
    assert info.value.step_id == "database-container"
    assert f"database image {missing} is not in its registry; push it first: bash " \
           f"scripts/services/images.sh push postgres {missing}" in str(info.value)
    assert info.value.rollback_failures == []
    assert git("--git-dir", str(world.gitops), "rev-parse", "main") == head
    assert cluster_secret(world, name, f"{name}-database") is None
    assert cluster_secret(world, name, f"{name}-secrets") is None


def test_a_later_failure_takes_the_database_container_back(
        prefect_server: None, world: World, postgres_image: str, tmp_path: Path) -> None:
    """A step failing after db:container: its Secret (password and seed) is deleted, no
    scratch database stays, nothing reaches Git."""
    from envforge.errors import StepFailedError
    from flows.environments import create_environment

    name = f"dbr-{uuid.uuid4().hex[:6]}"
    _fail_after(world.templates / "preview-app", "database-container")
    head = git("--git-dir", str(world.gitops), "rev-parse", "main")
    parameters: dict[str, Any] = {
        "repoUrl": world.app_repo.as_uri(), "imageRegistry": world.registry.access.address,
        "registryTls": False, "database": "container", "databaseImage": postgres_image}
    with pytest.raises(StepFailedError) as info:
        create_environment(name, template="preview-app", parameters=parameters)
    assert info.value.step_id == "boom" and info.value.rollback_failures == []
    assert git("--git-dir", str(world.gitops), "rev-parse", "main") == head
    assert cluster_secret(world, name, f"{name}-database") is None
    assert not [d for d in _databases(world) if name.replace("-", "_") in d]
