"""The layers hold: import contracts, private names, and the one block loader.

`lint-imports` (in `make lint`) checks the contracts of pyproject.toml; these tests run the same
contracts under pytest, plus what import-linter cannot express: no module imports another
module's private (``_underscore``) names.
"""

from __future__ import annotations

import ast
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
    """A connection source that hands out fixed values (what a test installs)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    def anonymisation_key(self, name: str | None) -> bytes:
        self.asked.append(("anonymisation_key", name))
        return b"k" * 32

    def __getattr__(self, method: str) -> Any:
        raise AssertionError(f"unexpected call {method}")


def test_the_library_asks_the_installed_connection_source() -> None:
    from envforge.db.actions import load_key

    fake = FakeConnections()
    with connections.connection_source_installed(fake):  # type: ignore[arg-type]
        assert load_key("team-key") == b"k" * 32
    assert fake.asked == [("anonymisation_key", "team-key")]
    # restored: the entry point's source, loading Prefect Blocks
    assert type(connections.connection_source()).__name__ == "BlockConnections"


def test_block_connections_come_from_the_entry_point() -> None:
    from blocks.loader import BlockConnections

    connections.use_connection_source(None)
    assert isinstance(connections.connection_source(), BlockConnections)


def test_no_block_name_means_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from blocks.loader import BlockConnections

    monkeypatch.delenv("ENVFORGE_ANONYMISATION_KEY_REF", raising=False)
    monkeypatch.setenv("ENVFORGE_ANONYMISATION_KEY", "0123456789abcdef-long")
    assert BlockConnections().anonymisation_key(None) == b"0123456789abcdef-long"
    monkeypatch.delenv("ENVFORGE_ANONYMISATION_KEY")
    with pytest.raises(ConfigurationError, match="no anonymisation key"):
        BlockConnections().anonymisation_key(None)


def test_an_unknown_block_name_is_one_configuration_error(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from blocks.database import DatabaseServer
    from blocks.loader import load_block

    def not_found(name: str) -> None:
        raise ValueError(f"Unable to find block document named {name}")

    monkeypatch.setattr(DatabaseServer, "load", not_found)
    with pytest.raises(ConfigurationError, match="no DatabaseServer block named 'absent': save"):
        load_block(DatabaseServer, "absent")
