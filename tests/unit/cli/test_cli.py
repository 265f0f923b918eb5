"""The envforge command without Prefect: listing, showing, validating, value parsing, errors."""

from pathlib import Path

import pytest

from envforge.cli import main
from envforge.cli.common import parse_values
from envforge.templating.loader import load_template
from tests.helpers import write_template

GOOD = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: good, title: Good one, tags: [demo]}
spec:
  type: service
  parameters:
    - required: [name]
      properties:
        name: {type: string, description: Service name}
        replicas: {type: integer, default: 1}
        debug: {type: boolean}
        labels: {type: object, properties: {team: {type: string}}}
  steps:
    - id: fetch
      action: fetch:template
      input: {url: ./skeleton, values: {name: "${{ parameters.name }}"}}
"""


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "templates"
    write_template(root / "good", GOOD, {"skeleton/a.txt": "${{ values.name }}"})
    monkeypatch.setenv("ENVFORGE_TEMPLATES_PATH", str(root))
    return root


def test_list_and_show(templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "list"]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "Good one" in out
    assert main(["templates", "show", "good"]) == 0
    out = capsys.readouterr().out
    assert "replicas" in out and "integer" in out and "Service name" in out
    assert "fetch:template" in out


def test_validate_passes_a_good_template(templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "validate", str(templates / "good")]) == 0
    assert "1 valid, 0 invalid" in capsys.readouterr().out


def test_validate_reports_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_template(tmp_path / "bad", """
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {name: bad}
        spec:
          type: service
          parameters: {properties: {n: {type: integer}}}
          steps:
            - {id: a, action: acme:unknown}
            - {id: b, action: debug:log, input: {message: "${{ steps.later.output.x }}"}}
            - {id: b2, action: debug:log, input: {mesage: hi}}
            - {id: later, action: fetch:template, input: {url: ./missing}}
            - {id: c, action: debug:log, input: {message: "${{ parameters.( }}"}}
        """)
    assert main(["templates", "validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "unknown action 'acme:unknown'" in out
    assert "refers to steps.later, which is not an earlier step" in out
    assert "input.mesage: Extra inputs are not permitted" in out
    assert "url './missing': no such directory" in out
    assert "step 'c' field input.message" in out
    assert "0 valid, 1 invalid" in out


def test_validate_reports_a_malformed_file_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "template.yaml").write_text("apiVersion: x\nkind: [unclosed\n")
    assert main(["templates", "validate", str(bad)]) == 1
    assert f"{bad / 'template.yaml'}:3" in capsys.readouterr().out


def test_unknown_template_is_one_line_and_exit_1(
    templates: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("error: unknown template 'nope': available templates are good")


def test_schema_violations_are_listed_before_anything_runs(
    templates: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "good", "--set", "replicas=many", "--set", "debug=maybe"]) == 1
    err = capsys.readouterr().err
    assert "3 parameter problem(s)" in err
    assert "$: 'name' is a required property" in err
    assert "$.replicas: 'many' is not of type 'integer'" in err
    assert "$.debug: 'maybe' is not of type 'boolean'" in err


def test_set_values_follow_the_schema_types(templates: Path, tmp_path: Path) -> None:
    template = load_template(templates / "good")
    values_file = tmp_path / "values.yaml"
    values_file.write_text("name: from-file\nreplicas: 2\n")
    values = parse_values(template, ["name=007", "replicas=3", "debug=false",
                                     "labels.team=core"], values_file)
    assert values == {"name": "007", "replicas": 3, "debug": False, "labels": {"team": "core"}}


def test_bad_set_syntax(templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "good", "--set", "novalue"]) == 1
    assert "--set 'novalue': expected key=value" in capsys.readouterr().err


def test_deploy_needs_a_server(templates: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["deploy"]) == 1
    assert "PREFECT_API_URL is not set" in capsys.readouterr().err
