"""preview-app uses the image, database and Vault actions; a dry run renders it all without
touching a registry, a database, Vault or a cluster, and validation passes."""

from pathlib import Path

import yaml

from envforge.core.config import PROJECT_ROOT
from envforge.run.runner import TemplateRun
from envforge.run.validation import validate_template
from envforge.templating.loader import load_template

TEMPLATE = PROJECT_ROOT / "templates" / "preview-app"


def test_preview_app_validates_and_uses_every_area() -> None:
    template = load_template(TEMPLATE)
    assert validate_template(template) == []
    actions = {s.action for s in template.spec.steps}
    assert {"image:build", "db:seed", "db:restore", "db:clone", "vault:secrets",
            "kubernetes:secret", "fetch:template", "publish:git"} <= actions


def test_preview_app_dry_run_renders_manifests_wired_to_image_and_secrets(
    tmp_path: Path,
) -> None:
    run = TemplateRun(load_template(TEMPLATE),
                      {"name": "pr-5", "repoUrl": "https://git.example/shop.git",
                       "database": "seed"}, dry_run=True)
    try:
        result = run.run()
        statuses = {s.id: s.status for s in result.steps}
        assert statuses["image"] == "faked" and statuses["database-seed"] == "faked"
        assert statuses["database-clone"] == "skipped"
        assert statuses["secrets"] == "dry-run" and statuses["publish"] == "faked"
        deployment = yaml.safe_load(
            (run.workspace / "manifests" / "deployment.yaml").read_text())
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "dry-run:image:build.image"
        assert {"configMapRef": {"name": "pr-5-config"}} in container["envFrom"]
        assert {"secretRef": {"name": "pr-5-secrets"}} in container["envFrom"]
        configmap = (run.workspace / "manifests" / "configmap.yaml").read_text()
        assert "LOG_LEVEL: debug" in configmap  # the preview type's override won
        assert "API_KEY" not in configmap  # a secret never lands in the ConfigMap
    finally:
        run.close()


def test_preview_app_delivers_where_the_pods_reach_the_database(tmp_path: Path) -> None:
    """The app's libpq settings: the host and port as the pods see the server (a real node's
    gateway), the user, and the environment's own database; no password among them."""
    run = TemplateRun(load_template(TEMPLATE),
                      {"name": "pr-7", "repoUrl": "https://git.example/shop.git",
                       "database": "seed", "databaseHost": "10.250.3.1",
                       "databasePort": 54400, "databaseUser": "shop"}, dry_run=True)
    try:
        run.run()
        configmap = yaml.safe_load((run.workspace / "manifests" / "configmap.yaml").read_text())
        data = configmap["data"]
        assert (data["PGHOST"], data["PGPORT"], data["PGUSER"]) == ("10.250.3.1", "54400", "shop")
        assert data["DATABASE_NAME"] == "envforge_pr_7"
        assert not {"PGPASSWORD", "DATABASE_URL"} & set(data)
    finally:
        run.close()


def test_preview_app_database_container_renders_its_statefulset_and_wires_the_app(
        tmp_path: Path) -> None:
    """database: container: the db:container step (faked in a dry run), a StatefulSet and a
    Service named <name>-db that read the password and the seed from the Secret
    <name>-database, the app's env pointing at them; no password in any file."""
    run = TemplateRun(load_template(TEMPLATE),
                      {"name": "pr-8", "repoUrl": "https://git.example/shop.git",
                       "database": "container", "imageRegistry": "127.0.0.1:5999"},
                      dry_run=True)
    try:
        result = run.run()
        statuses = {s.id: s.status for s in result.steps}
        assert statuses["database-container"] == "dry-run"
        assert statuses["database-seed"] == "skipped"
        manifests = run.workspace / "manifests"
        service, statefulset = yaml.safe_load_all((manifests / "database.yaml").read_text())
        assert (service["kind"], service["metadata"]["name"]) == ("Service", "pr-8-db")
        pod = statefulset["spec"]["template"]["spec"]
        db = pod["containers"][0]
        assert db["image"] == "127.0.0.1:5999/base/postgres:15"
        env = {e["name"]: e for e in db["env"]}
        assert env["POSTGRES_DB"]["value"] == "envforge_pr_8"
        assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "pr-8-database", "key": "password"}
        assert pod["volumes"][1]["secret"] == {"secretName": "pr-8-database",
                                               "items": [{"key": "seed.sql",
                                                          "path": "seed.sql"}]}
        app = yaml.safe_load((manifests / "deployment.yaml").read_text())
        app_env = {e["name"]: e for e in app["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert app_env["PGHOST"]["value"] == "$(PR_8_DB_SERVICE_HOST)"  # no DNS needed
        assert app_env["DATABASE_NAME"]["value"] == "envforge_pr_8"
        assert app_env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "pr-8-database"
        configmap = yaml.safe_load((manifests / "configmap.yaml").read_text())["data"]
        assert (configmap["PGHOST"], configmap["PGPORT"]) == ("pr-8-db", "5432")
        assert "PGPASSWORD" not in configmap
    finally:
        run.close()


def test_preview_app_without_a_database_container_renders_no_database_file(
        tmp_path: Path) -> None:
    run = TemplateRun(load_template(TEMPLATE),
                      {"name": "pr-6", "repoUrl": "https://git.example/shop.git",
                       "database": "seed"}, dry_run=True)
    try:
        run.run()
        files = sorted(p.name for p in (run.workspace / "manifests").iterdir())
        assert "database.yaml" not in files and "deployment.yaml" in files
        app = yaml.safe_load((run.workspace / "manifests" / "deployment.yaml").read_text())
        assert "env" not in app["spec"]["template"]["spec"]["containers"][0]
    finally:
        run.close()
