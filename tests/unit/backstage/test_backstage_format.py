"""Backstage templates run unchanged (issue 13): each feature with a template of our own."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from envforge.actions.registry import default_registry
from envforge.errors import EnvforgeError, PathEscapeError, StepFailedError, TemplateFormatError
from envforge.run.runner import TemplateRun
from envforge.run.validation import validate_template_dir
from envforge.templating.loader import load_template

HEAD = """\
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: {name}
spec:
  type: service
"""


def make(root: Path, body: str, name: str = "t", files: dict[str, str] | None = None) -> Path:
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "template.yaml").write_text(HEAD.format(name=name) + textwrap.indent(textwrap.dedent(body), "  "))
    for rel, content in (files or {}).items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return directory


def run(directory: Path, values: dict[str, Any] | None = None, dry_run: bool = False,
        **kwargs: Any) -> tuple[TemplateRun, dict[str, Any]]:
    template_run = TemplateRun(load_template(directory), values or {}, dry_run=dry_run,
                               registry=default_registry(), **kwargs)
    result = template_run.run()
    return template_run, result.to_dict()


def test_format_as_backstage_schema_accepts_it(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - action: debug:log
          input: {message: first}
        - id: 'fetch:base'
          action: debug:log
          input: {message: second}
      output:
        links:
          - title: Repo
            url: https://example.com
            icon: github
            if: ${{ parameters.show }}
          - title: Always
            entityRef: component:default/x
      presentation:
        buttonLabels: {createButtonText: Go}
    """, name="My_Template.v2")
    template = load_template(directory)
    assert template.name == "My_Template.v2"
    assert [s.id for s in template.spec.steps] == ["step-1", "fetch:base"]
    _, shown = run(directory, {"show": True})
    assert [link["title"] for link in shown["output"]["links"]] == ["Repo", "Always"]
    _, hidden = run(directory, {"show": False})
    assert [link["title"] for link in hidden["output"]["links"]] == ["Always"]


@pytest.mark.parametrize("name", ["-bad", "with space", "x" * 64, "trailing."])
def test_names_backstage_refuses_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "template.yaml").write_text(HEAD.format(name=json.dumps(name)))
    with pytest.raises(TemplateFormatError, match=r"metadata\.name"):
        load_template(tmp_path)


def test_nunjucks_semantics_in_step_inputs(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      parameters:
        - properties:
            owner: {type: string}
            tags: {type: array}
            optional: {type: string}
      steps:
        - id: write
          action: catalog:write
          input:
            filePath: out.yaml
            entity:
              dumped: ${{ parameters.tags | dump }}
              same: ${{ parameters.owner === 'group:default/a' }}
              differs: ${{ parameters.owner !== 'group:default/a' }}
              inline_if: "[${{ 'yes' if parameters.optional }}]"
              empty: "x${{ parameters.optional }}y"
              missing: ${{ parameters.optional }}
              ref: ${{ parameters.owner | parseEntityRef }}
              ref_name: ${{ (parameters.owner | parseEntityRef).name }}
              user: ${{ user.ref }}
              user_name: ${{ user.entity.metadata.name }}
              null_is_none: ${{ parameters.optional == null }}
    """)
    run_, _ = run(directory, {"owner": "group:default/a", "tags": ["x", "y"]},
                  user={"ref": "user:default/jane", "entity": {"metadata": {"name": "jane"}}})
    entity = yaml.safe_load((run_.workspace / "out.yaml").read_text())
    assert entity["dumped"] == '["x","y"]'
    assert entity["same"] is True and entity["differs"] is False
    assert entity["inline_if"] == "[]" and entity["empty"] == "xy"
    assert "missing" not in entity  # an undefined whole value is left out, as Backstage does
    assert entity["ref"] == {"kind": "group", "namespace": "default", "name": "a"}
    assert entity["ref_name"] == "a"
    assert entity["user"] == "user:default/jane" and entity["user_name"] == "jane"
    assert entity["null_is_none"] is True
    run_.close()


def test_each_runs_a_step_per_item_and_collects_outputs(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - id: write
          each: ${{ parameters.services }}
          action: catalog:write
          input:
            filePath: ${{ each.value.name }}.yaml
            entity: {name: '${{ each.value.name }}', index: '${{ each.key }}'}
        - id: by-map
          each: {a: 1, b: 2}
          action: debug:log
          input: {message: "${{ each.key }}=${{ each.value }}"}
      output:
        text:
          - title: files
            content: ${{ steps.write.output.filePath | join(',') }}
    """)
    run_, result = run(directory, {"services": [{"name": "api"}, {"name": "web"}]})
    assert sorted(p.name for p in run_.workspace.iterdir()) == ["api.yaml", "web.yaml"]
    assert result["output"]["text"][0]["content"] == "api.yaml,web.yaml"
    run_.close()


def test_secrets_are_names_never_values(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - id: log
          action: debug:log
          input: {message: "token is ${{ secrets.GITHUB_TOKEN }}"}
    """)
    run_, _ = run(directory, secret_names=["GITHUB_TOKEN"])
    assert run_.reports[0].status == "completed"
    with pytest.raises(StepFailedError, match=r"secrets\.GITHUB_TOKEN was not given to this "
                       r"run .*--secret GITHUB_TOKEN=VALUE"):
        run(directory)


def test_dry_run_gives_unknown_actions_placeholder_outputs(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - id: publish
          action: acme:publish
          input: {repoUrl: 'github.com?owner=o&repo=r'}
        - id: after
          action: debug:log
          input: {message: "pushed to ${{ steps.publish.output.remoteUrl }}"}
      output:
        links:
          - title: Repository
            url: ${{ steps.publish.output.remoteUrl }}
    """)
    run_, result = run(directory, dry_run=True)
    assert [s["status"] for s in result["steps"]] == ["skipped", "dry-run"]
    assert "unknown action 'acme:publish'" in result["steps"][0]["reason"]
    assert run_.unknown_actions == ["acme:publish"]
    assert result["output"]["links"][0]["url"] == "<acme:publish output remoteUrl (dry run)>"
    with pytest.raises(EnvforgeError, match=r"2 action\(s\) envforge does not have"):
        run(make(tmp_path / "again", """\
          steps:
            - {id: a, action: acme:publish, input: {}}
            - {id: b, action: acme:register, input: {}}
        """))


SKELETON = {
    "skeleton/${{ values.name }}.txt": "name=${{ values.name }}\n",
    "skeleton/${{ values.optional }}": "skipped: empty name\n",
    "skeleton/static/keep.txt": "${{ not rendered }}\n",
    "skeleton/cond.txt": "{% if values.flag %}on{% endif %}|${{ values.missing }}|\n",
    "skeleton/cc.txt.njk": "",
}


def test_skeleton_semantics(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - id: fetch
          action: fetch:template
          input:
            url: ./skeleton
            copyWithoutTemplating: [static]
            values: {name: app}
        - id: again
          action: fetch:template
          input:
            url: ./skeleton
            copyWithoutRender: [./static/]
            values: {name: app, flag: true}
    """, files=SKELETON)
    run_, result = run(directory)
    ws = run_.workspace
    assert sorted(str(p.relative_to(ws)) for p in ws.rglob("*") if p.is_file()) == [
        "app.txt", "cc.txt.njk", "cond.txt", "static/keep.txt"]
    assert (ws / "static/keep.txt").read_text() == "${{ not rendered }}\n"
    assert (ws / "cond.txt").read_text() == "||\n"  # the second fetch kept the first file
    assert result["steps"][1]["status"] == "completed"
    run_.close()


def test_fetch_template_options(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - id: cc
          action: fetch:template
          input:
            url: ./cookie
            cookiecutterCompat: true
            values: {name: app, items: [1, 2]}
        - id: trim
          action: fetch:template
          input:
            url: ./trim
            targetPath: trimmed
            trimBlocks: true
            lstripBlocks: true
            values: {flag: true}
        - id: ext
          action: fetch:template
          input:
            url: ./ext
            targetPath: ext
            templateFileExtension: .jinja
            values: {name: app}
    """, files={
        "cookie/{{ cookiecutter.name }}.md": "{{ cookiecutter.name }} {{ cookiecutter.items | jsonify }}",
        "trim/a.txt": "x\n    {% if values.flag %}\ny\n    {% endif %}\nz\n",
        "ext/a.txt.jinja": "${{ values.name }}", "ext/b.txt": "${{ values.name }}",
    })
    run_, _ = run(directory)
    ws = run_.workspace
    assert (ws / "app.md").read_text() == "app [1,2]"
    assert (ws / "trimmed/a.txt").read_text() == "x\ny\nz\n"
    assert (ws / "ext/a.txt").read_text() == "app"
    assert (ws / "ext/b.txt").read_text() == "${{ values.name }}"
    run_.close()


def test_relative_urls_reach_the_repository_but_not_beyond(tmp_path: Path) -> None:
    repo = tmp_path / "collection"
    (repo / "skeletons/shared").mkdir(parents=True)
    (repo / "skeletons/shared/README.md").write_text("${{ values.name }}\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (tmp_path / "outside").mkdir()
    directory = make(repo / "templates", """\
      steps:
        - id: fetch
          action: fetch:template
          input: {url: ../../skeletons/shared, values: {name: shared}}
    """)
    run_, _ = run(directory)
    assert (run_.workspace / "README.md").read_text() == "shared\n"
    run_.close()
    escape = make(repo / "templates", """\
      steps:
        - id: fetch
          action: fetch:plain
          input: {url: ../../../outside}
    """, name="escape")
    with pytest.raises(StepFailedError) as info:
        run(escape)
    assert isinstance(info.value.__cause__, PathEscapeError)
    assert "outside the repository/catalog" in str(info.value)


def test_file_actions_and_their_rollback(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - id: one
          action: fetch:template:file
          input: {url: ./files/README.md, targetPath: docs/README.md, values: {name: app}}
        - id: two
          action: fetch:plain:file
          input: {url: ./files/README.md, targetPath: raw.md}
        - id: mv
          action: fs:rename
          input: {files: [{from: raw.md, to: moved/raw.md}]}
        - id: rm
          action: fs:delete
          input: {files: ['docs/*.md']}
        - id: wait
          action: debug:wait
          input: {milliseconds: 10}
        - id: fail
          action: debug:wait
          input: {minutes: 60}
    """, files={"files/README.md": "# ${{ values.name }}\n"})
    template_run = TemplateRun(load_template(directory), {}, registry=default_registry())
    with pytest.raises(StepFailedError, match="longer than"):
        template_run.run()
    ws = template_run.workspace
    assert [p for p in ws.rglob("*") if p.is_file()] == []  # every step undone
    template_run.close()
    fine = TemplateRun(load_template(directory), {}, registry=default_registry())
    fine.template.spec.steps.pop()
    fine.run()
    files = sorted(str(p.relative_to(fine.workspace)) for p in fine.workspace.rglob("*")
                   if p.is_file())
    assert files == ["moved/raw.md"]
    assert (fine.workspace / "moved/raw.md").read_text() == "# ${{ values.name }}\n"
    fine.close()


def test_validate_warns_about_undefined_and_strict_fails(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      parameters:
        - required: [name]
          properties:
            name: {type: string}
            description: {type: string}
            repoUrl: {type: string, ui:field: RepoUrlPicker}
      steps:
        - id: fetch
          action: fetch:template
          input:
            url: ./skeleton
            values:
              name: ${{ parameters.name }}
              description: ${{ parameters.description }}
              repo: ${{ (parameters.repoUrl | parseRepoUrl).repo if parameters.repoUrl }}
    """, files={"skeleton/README.md": "${{ values.name }}: ${{ values.description }}\n"
                                      "${{ values.typo }}\n"})
    report = validate_template_dir(directory)
    assert report.ok, report.problems  # parseRepoUrl gets a RepoUrlPicker value
    assert report.passes(strict=False) and not report.passes(strict=True)
    text = "\n".join(report.warnings)
    assert "./skeleton/README.md: 'typo' is undefined with every field filled" in text
    assert "step 'fetch' field input.values.description: 'description' is undefined with " \
           "only required fields" in text


def test_project_templates_pass_validate_strict() -> None:
    root = Path(__file__).resolve().parents[3] / "templates"
    dirs = sorted(p.parent for p in root.glob("*/template.yaml"))
    assert dirs
    for directory in dirs:
        report = validate_template_dir(directory)
        assert report.passes(strict=True), (directory.name, report.problems, report.warnings)


def test_fetch_rails_is_missing_with_its_reason(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - id: rails
          action: fetch:rails
          input: {url: ./skeleton, values: {railsArguments: {api: true}}}
    """)
    run_, _ = run(directory, dry_run=True)
    assert run_.reports[0].status == "skipped"
    assert "fetch:rails is not built: it runs the Rails generator" in (run_.reports[0].reason
                                                                       or "")
    run_.close()
    with pytest.raises(EnvforgeError, match=r"fetch:rails \(step 'rails'\) \(fetch:rails is "
                       r"not built: .*cannot install"):
        run(directory)
