"""End to end, through the lifecycle flows on a real temporary Prefect server: a preview
environment from preview-app with a real image build, a seeded PostgreSQL database, a secret
from Vault delivered as a Kubernetes Secret, and its files in a real GitOps remote; then an
update on a new commit, and destroy. After each step: Git, the database server, the registry
and the cluster are checked. Then a failure is injected after every step in turn: nothing of
that run may remain anywhere."""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml

from tests.helpers import git, remote_files
from tests.integration.e2e.conftest import (
    API_KEY,
    World,
    cluster_secret,
    get_through_ingress,
    wait_synced_and_healthy,
)
from tests.integration.images.conftest import commit_to

pytestmark = [pytest.mark.prefect, pytest.mark.buildah, pytest.mark.postgres, pytest.mark.slow]


def _params(world: World) -> dict[str, object]:
    return {"repoUrl": world.app_repo.as_uri(), "imageRegistry": world.registry.access.address,
            "registryTls": False, "database": "seed"}


def _databases(world: World) -> set[str]:
    with psycopg.connect(world.database.conninfo(), autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def _rows(world: World, database: str, table: str) -> int:
    with psycopg.connect(world.database.with_database(database).conninfo()) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


def _secret(world: World, namespace: str, name: str) -> dict[str, str] | None:
    return cluster_secret(world, namespace, name)


def _everything_in_git(remote: Path) -> str:
    """Every blob of every commit, reachable or not: where a leaked value would hide."""
    objects = subprocess.run(["git", "--git-dir", str(remote), "cat-file",
                              "--batch-all-objects", "--batch"], capture_output=True,
                             check=True).stdout
    return objects.decode("utf-8", "replace")


def test_preview_environment_end_to_end(prefect_server: None, world: World) -> None:
    from flows.environments import create_environment, destroy_environment

    name = f"pr-1-{uuid.uuid4().hex[:6]}"
    db = f"envforge_{name.replace('-', '_')}"
    created = create_environment(name, template="preview-app", parameters=_params(world),
                                 source={"repository": world.app_repo.as_uri(),
                                         "branch": "main", "pullRequest": 1})
    assert created["mode"] == "create"
    steps = {s["id"]: s["status"] for s in created["run"]["steps"]}
    assert steps["image"] == steps["database-seed"] == steps["secrets"] == "completed"
    assert steps["database-clone"] == "skipped"

    # Git: the record, manifests wired to the image by digest and to the Secret by name
    files = remote_files(world.gitops)
    assert f"environments/{name}/environment.yaml" in files and f"argocd/{name}.yaml" in files
    deployment = yaml.safe_load(git("--git-dir", str(world.gitops), "show",
                                    f"main:environments/{name}/manifests/deployment.yaml"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    first_image = container["image"]
    assert first_image.startswith(f"{world.registry.access.host}/{name}@sha256:")
    assert {"secretRef": {"name": f"{name}-secrets"}} in container["envFrom"]
    assert API_KEY not in _everything_in_git(world.gitops)
    # database: seeded, marked as envforge's
    assert db in _databases(world)
    assert _rows(world, db, "public.customers") == 50
    # registry: the image under its commit tag
    assert world.registry.tags(name)
    # cluster: Argo CD synced it to the real API server; the Secret carries the Vault value
    status = wait_synced_and_healthy(world, name)
    synced = {(r["kind"], r["name"]) for r in status["resources"]}
    assert {("Namespace", name), ("Deployment", name), ("Service", name)} <= synced
    data = _secret(world, name, f"{name}-secrets")
    assert data is not None
    assert base64.b64decode(data["API_KEY"]).decode() == API_KEY
    # the environment's URL answers through the ingress controller, from the built image
    assert get_through_ingress(world, created["url"]) == "<p>shop</p>\n"

    # a new commit on the branch: the update builds and deploys it
    commit_to(world.app_repo, {"index.html": "<p>shop v2</p>\n"}, "main")
    updated = create_environment(name, parameters={"ref": "main"})
    assert updated["mode"] == "update" and updated["commit"]
    deployment = yaml.safe_load(git("--git-dir", str(world.gitops), "show",
                                    f"main:environments/{name}/manifests/deployment.yaml"))
    second_image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert second_image != first_image and "@sha256:" in second_image
    wait_synced_and_healthy(world, name)
    live = world.cluster.plane.kubectl("get", "deployment", "-n", name, name, "-o",
                                       "jsonpath={.spec.template.spec.containers[0].image}")
    assert live.stdout == second_image
    deadline = time.monotonic() + 60  # the old pod serves until the new one is Ready
    while get_through_ingress(world, created["url"]) != "<p>shop v2</p>\n":
        assert time.monotonic() < deadline, "the URL never served the new commit"
        time.sleep(0.5)

    destroyed = destroy_environment(name)
    assert destroyed["databases"] == [db] and destroyed["problems"] == []
    assert not any(f.startswith(f"environments/{name}/") for f in remote_files(world.gitops))
    assert db not in _databases(world)
    assert _secret(world, name, f"{name}-secrets") is None


STEPS_TO_BREAK_AFTER = ["image", "database-seed", "secrets", "deliver", "fetch-manifests",
                        "environment"]


@pytest.mark.parametrize("after", STEPS_TO_BREAK_AFTER)
def test_a_failure_after_any_step_leaves_nothing(prefect_server: None, world: World,
                                                 after: str) -> None:
    """A step that fails (its rendered input is not a number) is inserted after
    ``after``."""
    from envforge.errors import StepFailedError
    from flows.environments import create_environment

    name = f"inj-{STEPS_TO_BREAK_AFTER.index(after)}-{uuid.uuid4().hex[:6]}"
    _break_template_after(world.templates / "preview-app", after)
    head = git("--git-dir", str(world.gitops), "rev-parse", "main")
    with pytest.raises(StepFailedError) as info:
        create_environment(name, template="preview-app", parameters=_params(world))
    assert info.value.step_id == "boom"
    assert info.value.rollback_failures == []
    assert git("--git-dir", str(world.gitops), "rev-parse", "main") == head  # no commit
    assert f"envforge_{name.replace('-', '_')}" not in _databases(world)  # no database
    assert _secret(world, name, f"{name}-secrets") is None  # no Secret
    assert world.registry.tags(name) == []  # no image tag of this run


def _break_template_after(directory: Path, after: str) -> None:
    """Insert a failing step after ``after``; publish:git's place is taken at run time by
    publish:gitops (step id "environment"), so "environment" means: at the very end."""
    path = directory / "template.yaml"
    template = yaml.safe_load(path.read_text())
    steps = template["spec"]["steps"]
    # an undefined name renders empty (as Backstage's nunjucks does), so the input is "never",
    # which debug:wait refuses when the step runs
    boom = {"id": "boom", "action": "debug:wait",
            "input": {"seconds": "never${{ parameters.no_such_parameter }}"}}
    if after == "environment":
        steps.append(boom)
    else:
        steps.insert(next(i for i, s in enumerate(steps) if s["id"] == after) + 1, boom)
    path.write_text(yaml.safe_dump(template, sort_keys=False))


def test_refresh_data_rebuilds_opted_in_databases(prefect_server: None, world: World) -> None:
    """Nightly refresh: the opted-in environment's database is rebuilt (the rows written
    since are gone); the other is left alone."""
    from flows.environments import create_environment, destroy_environment, refresh_data

    create_environment("fresh", template="preview-app",
                       parameters={**_params(world), "vaultSecrets": False, "refreshData": True})
    create_environment("kept", template="preview-app",
                       parameters={**_params(world), "vaultSecrets": False})
    for database in ("envforge_fresh", "envforge_kept"):
        with psycopg.connect(world.database.with_database(database).conninfo(),
                             autocommit=True) as conn:
            conn.execute("DELETE FROM public.orders")
            conn.execute("DELETE FROM public.customers")
    result = refresh_data()
    assert result == {"refreshed": ["fresh"], "failed": []}
    assert _rows(world, "envforge_fresh", "public.customers") == 50  # seeded again
    assert _rows(world, "envforge_kept", "public.customers") == 0  # not opted in
    assert refresh_data(names=["nope"]) == {"refreshed": [], "failed": ["nope"]}
    destroy_environment("fresh")
    destroy_environment("kept")
