"""preview-app with ``databaseLogin``: a dry run runs db:role after the data step and wires the
app's PGUSER/PGPASSWORD to the Secret <name>-db-login; no password in any rendered file; with
a database container (its own password) or no database there is no db:role step."""

from __future__ import annotations

import yaml

from envforge.core.config import PROJECT_ROOT
from envforge.run.runner import TemplateRun
from envforge.templating.loader import load_template

TEMPLATE = PROJECT_ROOT / "templates" / "preview-app"


def _dry_run(database: str, login: bool) -> tuple[dict[str, str], dict[str, object]]:
    run = TemplateRun(load_template(TEMPLATE),
                      {"name": "pr-9", "repoUrl": "https://git.example/shop.git",
                       "database": database, "databaseLogin": login,
                       "imageRegistry": "127.0.0.1:5999"}, dry_run=True)
    try:
        result = run.run()
        statuses = {s.id: s.status for s in result.steps}
        app = yaml.safe_load((run.workspace / "manifests" / "deployment.yaml").read_text())
        return statuses, app["spec"]["template"]["spec"]["containers"][0]
    finally:
        run.close()


def test_a_seeded_database_gets_its_own_login_wired_from_its_secret() -> None:
    statuses, container = _dry_run("seed", True)
    assert statuses["database-role"] == "dry-run" and statuses["database-seed"] != "skipped"
    env = {e["name"]: e for e in container["env"]}  # type: ignore[union-attr]
    for key in ("PGUSER", "PGPASSWORD"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "pr-9-db-login", "key": key}
        assert "value" not in env[key]


def test_no_login_without_the_option_or_for_a_database_container() -> None:
    statuses, container = _dry_run("seed", False)
    assert statuses["database-role"] == "skipped" and "env" not in container
    statuses, container = _dry_run("container", True)
    assert statuses["database-role"] == "skipped"
    env = {e["name"]: e for e in container["env"]}  # type: ignore[union-attr]
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "pr-9-database"
    statuses, _ = _dry_run("none", True)
    assert statuses["database-role"] == "skipped"
