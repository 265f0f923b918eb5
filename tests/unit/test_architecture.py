"""The layers hold: import contracts, private names, and the one block loader.

`lint-imports` (in `make lint`) checks the contracts of pyproject.toml; these tests run the same
contracts under pytest, plus what import-linter cannot express: no module imports another
module's private (``_underscore``) names.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from envforge import connections
from envforge.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
#: What ships or runs as our code; the tests may reach into private names to test them.
CHECKED = ("envforge", "flows", "blocks", "bench")
PROJECT_PACKAGES = ("envforge", "flows", "blocks", "bench", "tests")


def private_imports(source: str, path: str) -> list[str]:
    """Every ``from <project module> import _name`` and import of a ``_private`` project
    module in ``source``, as ``path:line: ...``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules, names = [node.module], [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names], []
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] not in PROJECT_PACKAGES:
                continue
            if any(p.startswith("_") and not p.startswith("__") for p in parts):
                found.append(f"{path}:{node.lineno}: imports private module {module}")
            found += [f"{path}:{node.lineno}: from {module} import {name}" for name in names
                      if name.startswith("_") and not name.startswith("__")]
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    problems = []
    for package in CHECKED:
        for path in sorted((ROOT / package).rglob("*.py")):
            problems += private_imports(path.read_text(encoding="utf-8"),
                                        str(path.relative_to(ROOT)))
    assert problems == [], "make these names public (and document them), or move the code:\n" \
        + "\n".join(problems)


# Each compiled module has one Python module that chooses it and holds its fallback (import
# linter cannot see an extension module: it has no source to parse, so this test keeps it).
COMPILED_OWNERS = {"envforge.db.keyed_c": "envforge/db/keyed_loops.py",
                   "envforge.db.copyrows_c": "envforge/db/copy_binary.py"}


def compiled_imports(source: str, path: str) -> list[str]:
    """Imports of a compiled module by a module other than its owner."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found += [f"{path}:{node.lineno}: {name}" for name in names
                  if name in COMPILED_OWNERS and COMPILED_OWNERS[name] != path]
    return found


def test_compiled_modules_are_imported_only_by_their_owners() -> None:
    problems = []
    for package in CHECKED:
        for path in sorted((ROOT / package).rglob("*.py")):
            problems += compiled_imports(path.read_text(encoding="utf-8"),
                                         str(path.relative_to(ROOT)))
    assert problems == [], "use the Python module that chooses it:\n" + "\n".join(problems)
    for module, owner in COMPILED_OWNERS.items():
        assert compiled_imports((ROOT / owner).read_text(encoding="utf-8"), "elsewhere.py"), \
            f"{owner} no longer imports {module}: update COMPILED_OWNERS"
    assert compiled_imports("from envforge.db import keyed_c\nimport envforge.db.copyrows_c\n",
                            "x.py") == ["x.py:1: envforge.db.keyed_c",
                                        "x.py:2: envforge.db.copyrows_c"]


def test_the_private_names_check_finds_what_it_should() -> None:
    source = ("from flows.run_template import _execute_as_task, run_template\n"
              "import envforge._internal\n"
              "from os import _exit\n"
              "from envforge import __version__\n")
    assert private_imports(source, "x.py") == [
        "x.py:1: from flows.run_template import _execute_as_task",
        "x.py:2: imports private module envforge._internal",
    ]


def test_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    from importlinter.cli import lint_imports

    exit_code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    report = capsys.readouterr().out
    assert "never imports blocks or flows KEPT" in report, report
    assert exit_code == 0, report


class FakeConnections:
    """A connection source that hands out fixed values (what a test hands in)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    def anonymisation_key(self, name: str | None) -> bytes:
        self.asked.append(("anonymisation_key", name))
        return b"k" * 32

    def __getattr__(self, method: str) -> Any:
        raise AssertionError(f"unexpected call {method}")


def test_an_action_asks_the_connections_its_run_was_handed(tmp_path: Path) -> None:
    from envforge.actions.base import ActionContext
    from envforge.db.actions import load_key
    from envforge.run.runner import TemplateRun
    from envforge.services import require_connections
    from envforge.templating.loader import load_template
    from tests.helpers import write_template
    from tests.services_fixtures import make_services

    fake = FakeConnections()
    assert load_key("team-key", fake) == b"k" * 32  # type: ignore[arg-type]
    assert fake.asked == [("anonymisation_key", "team-key")]
    services = make_services({}, connections=fake)  # type: ignore[arg-type]
    template = write_template(tmp_path / "t", """
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {name: t}
        spec:
          type: service
          steps:
            - {id: log, action: debug:log, input: {message: hi}}
        """)
    run = TemplateRun(load_template(template), {}, services=services)
    try:
        ctx = run.action_context("log")
        assert ctx.services is services and ctx.capabilities is services.capabilities
        assert require_connections(ctx.services, "step 'log'") is fake
    finally:
        run.close()
    bare = ActionContext(run_id="r", step_id="db", template_name="t", template_dir=tmp_path,
                         workspace=tmp_path)
    with pytest.raises(ConfigurationError, match=r"step 'db' needs connections .* no services"):
        require_connections(bare.services, "step 'db'")


def test_there_is_no_process_wide_locator_or_hook_list() -> None:
    """Collaborators are handed down (envforge.services), never found or registered."""
    assert not hasattr(connections, "connection_source")
    assert not hasattr(connections, "use_connection_source")
    from envforge.core import secret_guard
    from envforge.gitops import validate
    from envforge.run import runner
    from envforge.secrets import environment

    assert not hasattr(runner, "STEP_LISTENERS")
    assert not hasattr(environment, "FORGET_HOOKS")
    assert not hasattr(secret_guard, "_SCRUB_SOURCES")
    assert not hasattr(validate, "_server_checks")


def test_only_the_flows_composition_root_takes_the_cli_services() -> None:
    """``provided_services`` hands the CLI's services to the flow it runs in-process; nothing
    else may read it, or it would be a locator."""
    readers = [str(p.relative_to(ROOT)) for package in CHECKED
               for p in sorted((ROOT / package).rglob("*.py"))
               if "provided_services()" in p.read_text(encoding="utf-8")
               and p != ROOT / "envforge" / "services.py"]
    assert readers == ["flows/services.py"]


#: Modules that read the process environment themselves, and why: the settings module and the
#: process bootstrap, plus the two subprocess boundaries that hand it on. Everything else gets
#: its settings handed down (Services.settings, a section passed in) or, in a deep call made
#: outside the composition roots, from envforge.settings.load_settings(). Never grow this list.
ENVIRONMENT_READERS = {
    "envforge/settings.py": "the one settings module",
    "envforge/launch/flow_start.py": "process bootstrap: forwards its environment to the warm runner",
    "envforge/launch/warm_runner.py": "process bootstrap: takes the caller's environment",
    "envforge/core/git_boundary.py": "the git boundary: the environment git subprocesses "
                                     "inherit (PATH, HOME, locale), minus every GIT_*",
    "envforge/db/connection.py": "the libpq boundary: the environment pg_dump/pg_restore/psql "
                                 "inherit (PATH, locale), PGPASSWORD replaced by the address's",
    "envforge/db/early_dump.py": "the libpq boundary of `db clone`'s first 0.15 s, before the "
                                 "settings are imported (their import is what it saves): the "
                                 "environment psql/pg_dump inherit, and ENVFORGE_PG_BIN",
    "envforge/cli/run.py": "sets Prefect's own PREFECT_LOGGING_TO_API_BATCH_INTERVAL before the "
                           "in-process flow starts Prefect's log worker thread (which a "
                           "temporary_settings context does not reach)",
}


def test_only_the_listed_modules_read_the_environment() -> None:
    readers = {}
    for package in ("envforge", "flows", "blocks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if "os.environ" in text or "getenv(" in text:
                readers[str(path.relative_to(ROOT))] = True
    unexpected = sorted(set(readers) - set(ENVIRONMENT_READERS))
    assert unexpected == [], ("read the setting through envforge/settings.py (add a field "
                              f"there) instead: {unexpected}")
    gone = sorted(set(ENVIRONMENT_READERS) - set(readers))
    assert gone == [], f"no longer read the environment: drop them from the list: {gone}"


#: Modules that start git (a ``["git", ...]`` process or GitPython) other than the git boundary,
#: and why. Everything else runs git through envforge/core/git_boundary.py (run_git,
#: git_succeeds, WorkingCopy), where the environment is scrubbed (GIT_* dropped, no hooks, no
#: user config), stdin closed, a timeout set and failures become one GitError. Never grow it.
GIT_OUTSIDE_THE_BOUNDARY = {
    "envforge/core/git_boundary.py": "the boundary itself",
    "envforge/capabilities/clone.py": "the budgeted clone: watches a transfer's bytes and "
                                      "streams ls-tree (environment from the boundary)",
    "envforge/images/source.py": "GitPython reads a mirror's tree objects (Repo objects made "
                                 "by the boundary's open_repo/clone: environment, timeout)",
}


def test_git_runs_only_through_the_boundary() -> None:
    pattern = re.compile(r'\[\s*"git"|^import git$|^from git[ .]', re.MULTILINE)
    starters = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "envforge").rglob("*.py")
                      if pattern.search(p.read_text(encoding="utf-8")))
    assert sorted(set(starters) - set(GIT_OUTSIDE_THE_BOUNDARY)) == [], (
        "run git through envforge.core.git_boundary (run_git, git_succeeds, WorkingCopy)")
    assert sorted(set(GIT_OUTSIDE_THE_BOUNDARY) - set(starters)) == [], \
        "no longer starts git itself: drop it from GIT_OUTSIDE_THE_BOUNDARY"


def test_no_block_name_means_the_environment() -> None:
    from blocks.loader import BlockConnections
    from envforge.settings import EnvforgeSettings

    settings = EnvforgeSettings.from_environ({"ENVFORGE_ANONYMISATION_KEY":
                                              "0123456789abcdef-long"})
    assert BlockConnections(settings).anonymisation_key(None) == b"0123456789abcdef-long"
    with pytest.raises(ConfigurationError, match="no anonymisation key"):
        BlockConnections(EnvforgeSettings.from_environ({})).anonymisation_key(None)


def test_an_unknown_block_name_is_one_configuration_error(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from blocks.database import DatabaseServer
    from blocks.loader import load_block

    def not_found(name: str) -> None:
        raise ValueError(f"Unable to find block document named {name}")

    monkeypatch.setattr(DatabaseServer, "load", not_found)
    with pytest.raises(ConfigurationError, match="no DatabaseServer block named 'absent': save"):
        load_block(DatabaseServer, "absent")


def test_every_library_module_is_in_a_checked_layer() -> None:
    """A module outside the layers contract is checked by nothing (import-linter ignores it)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [layers] = [c["layers"] for c in config["tool"]["importlinter"]["contracts"]
                if c.get("containers") == ["envforge"]]
    layered = {name.strip() for layer in layers for name in layer.split("|")}
    library = ROOT / "envforge"
    modules = {p.stem for p in library.glob("*.py") if not p.name.startswith("__")}
    packages = {p.parent.name for p in library.glob("*/__init__.py")}
    assert sorted((modules | packages) - layered) == []
