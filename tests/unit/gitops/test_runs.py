"""How a template is run for an environment: publish:git steps give way to publish:gitops."""

from pathlib import Path

from envforge.gitops.runs import environment_template
from envforge.templating.loader import load_template

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


def test_publish_git_is_replaced_by_one_publish_gitops_step() -> None:
    template = load_template(TEMPLATES / "python-service")
    derived = environment_template(template)
    assert [s.action for s in template.spec.steps] == [
        "fetch:template", "debug:log", "publish:git"]
    assert [s.action for s in derived.spec.steps] == [
        "fetch:template", "debug:log", "publish:gitops"]
    step = derived.spec.steps[-1]
    assert step.id == "environment" and step.input == {"parameters": "${{ parameters }}"}
    assert derived.spec.output.links[0].url == "${{ steps['environment'].output.url }}"
    assert [s.action for s in template.spec.steps][-1] == "publish:git"  # original untouched


def test_a_template_with_its_own_publish_gitops_step_runs_as_written(tmp_path: Path) -> None:
    from tests.helpers import write_template

    directory = write_template(tmp_path / "t", """
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {name: t}
        spec:
          owner: group:x
          type: service
          steps:
            - {id: pub, action: publish:git, input: {targetPath: x}}
            - {id: env, action: publish:gitops, input: {manifestsPath: m}}
        """)
    template = load_template(directory)
    assert environment_template(template) is template
