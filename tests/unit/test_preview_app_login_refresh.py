"""The nightly refresh of a preview-app environment with its own login: refresh_plan keeps
db:role after the data step, both with ``replace: true`` (the role is granted the rebuilt
database again and keeps its password), and nothing else of the template."""

from __future__ import annotations

from envforge.core.config import PROJECT_ROOT
from envforge.environments.lifecycle import refresh_plan
from envforge.gitops.record import EnvironmentSpec, Isolation
from envforge.templating.loader import TemplateCatalog
from tests.unit.gitops.helpers import NOW, offline_store


def test_a_refresh_runs_the_data_step_then_db_role_with_replace() -> None:
    spec = EnvironmentSpec(template="preview-app", type="preview", owner="group:team-a",
                           parameters={"name": "pr-3", "repoUrl": "https://git.example/a.git",
                                       "database": "seed", "databaseLogin": True},
                           isolation=Isolation())
    record = offline_store().new_record("pr-3", spec, "48h", now=NOW)
    plan = refresh_plan(record, TemplateCatalog([PROJECT_ROOT / "templates"]))
    steps = plan.template.spec.steps
    assert [s.action for s in steps] == ["db:seed", "db:restore", "db:clone", "db:role"]
    assert all(s.input.get("replace") is True for s in steps)
    assert steps[-1].id == "database-role"


def test_the_refresh_plan_dry_runs_db_role_with_its_replace_input() -> None:
    from envforge.run.runner import TemplateRun

    spec = EnvironmentSpec(template="preview-app", type="preview", owner="group:team-a",
                           parameters={"name": "pr-4", "repoUrl": "https://git.example/a.git",
                                       "database": "seed", "databaseLogin": True},
                           isolation=Isolation())
    record = offline_store().new_record("pr-4", spec, "48h", now=NOW)
    plan = refresh_plan(record, TemplateCatalog([PROJECT_ROOT / "templates"]))
    run = TemplateRun(plan.template, plan.parameters, dry_run=True,
                      environment=plan.environment)
    try:
        statuses = {s.id: s.status for s in run.run().steps}
    finally:
        run.close()
    assert statuses["database-role"] == "dry-run"  # its input (replace: true) validated
    assert statuses["database-clone"] == statuses["database-snapshot"] == "skipped"
