"""`envforge vars explain`: masked values, winning scopes, errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envforge.cli import main


def test_explain_shows_masked_values_and_scopes(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "vars.yaml"
    file.write_text("variables: {LOG_LEVEL: warning, PW: 'vault:kv/app/db#password'}\n"
                    "types: {staging: {LOG_LEVEL: error}}\n")
    code = main(["vars", "explain", "pr-9", "--variables-file", str(file), "--type", "staging",
                 "--builtin", "DATABASE_URL=postgres://u:cli-secret-77@h/db", "--output", "json"])
    assert code == 0
    out = capsys.readouterr().out
    assert "cli-secret-77" not in out
    rows = {r["name"]: r for r in json.loads(out)["variables"]}
    assert rows["LOG_LEVEL"]["value"] == "error" and rows["LOG_LEVEL"]["scope"] == "type"
    assert rows["LOG_LEVEL"]["shadowed"][0]["value"] == "warning"
    assert rows["PW"]["value"] == "<vault:kv/app/db#password>" and rows["PW"]["secret"]
    assert rows["DATABASE_URL"]["secret"] and rows["ENV_NAME"]["value"] == "pr-9"


def test_explain_reports_a_cycle_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["vars", "explain", "pr-9", "--set", "A=${{ vars.B }}", "--set",
                 "B=x${{ vars.A }}"])
    assert code == 1
    assert capsys.readouterr().err.strip() == (
        "error: variables refer to each other in a cycle: A -> B -> A; make one of them a "
        "literal or a secret reference")


def test_explain_refuses_a_malformed_assignment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vars", "explain", "pr-9", "--set", "NOEQUALS"]) == 1
    assert "expected NAME=VALUE" in capsys.readouterr().err
