from pathlib import Path

import pytest

from envforge.errors import TemplateFormatError, TemplateNotFoundError
from envforge.templating.loader import TemplateCatalog, load_template
from tests.helpers import write_template

# A template as Backstage's own documentation writes one (permissions, ui fields, presentation,
# entity refs in output): it must load unchanged.
BACKSTAGE_TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: example-nodejs-template
  title: Example Node.js Template
  description: An example template for the scaffolder that creates a simple Node.js service
  tags: [recommended, nodejs]
  annotations:
    backstage.io/techdocs-ref: dir:.
spec:
  owner: user:guest
  type: service
  presentation:
    buttonLabels: {createButtonText: Create}
  parameters:
    - title: Fill in some steps
      required: [name]
      properties:
        name:
          title: Name
          type: string
          description: Unique name of the component
          ui:autofocus: true
          ui:options: {rows: 5}
        owner:
          title: Owner
          type: string
          ui:field: OwnerPicker
          ui:options:
            catalogFilter: {kind: Group}
    - title: Choose a location
      required: [repoUrl]
      properties:
        repoUrl:
          title: Repository Location
          type: string
          ui:field: RepoUrlPicker
          ui:options: {allowedHosts: [github.com]}
  steps:
    - id: fetch-base
      name: Fetch Base
      action: fetch:template
      backstage:permissions:
        tags: [steps-tag]
      input:
        url: ./content
        values:
          name: ${{ parameters.name }}
    - id: publish
      name: Publish
      action: publish:github
      input:
        allowedHosts: ['github.com']
        description: This is ${{ parameters.name }}
        repoUrl: ${{ parameters.repoUrl }}
    - id: register
      name: Register
      action: catalog:register
      input:
        repoContentsUrl: ${{ steps['publish'].output.repoContentsUrl }}
        catalogInfoPath: '/catalog-info.yaml'
  output:
    links:
      - title: Repository
        url: ${{ steps['publish'].output.remoteUrl }}
      - title: Open in catalog
        icon: catalog
        entityRef: ${{ steps['register'].output.entityRef }}
"""


def test_a_backstage_template_loads_unchanged(tmp_path: Path) -> None:
    d = write_template(tmp_path / "example-nodejs-template", BACKSTAGE_TEMPLATE)
    t = load_template(d)
    assert t.name == "example-nodejs-template"
    assert t.metadata.tags == ["recommended", "nodejs"]
    assert [s.id for s in t.spec.steps] == ["fetch-base", "publish", "register"]
    assert t.spec.steps[0].model_extra == {"backstage:permissions": {"tags": ["steps-tag"]}}
    assert t.spec.output.links[1].entityRef == "${{ steps['register'].output.entityRef }}"
    assert isinstance(t.spec.parameters, list) and len(t.spec.parameters) == 2


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    d = write_template(tmp_path / "bad", """
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata:
          name: bad
        spec:
          type: service
          steps:
            - id: a
              action: debug:log
              input: {message: "unclosed
        """)
    with pytest.raises(TemplateFormatError) as info:
        load_template(d)
    assert info.value.line is not None and info.value.line >= 10
    assert f"{d / 'template.yaml'}:{info.value.line}: not valid YAML" in str(info.value)


def test_shape_errors_name_the_field_and_its_line(tmp_path: Path) -> None:
    d = write_template(tmp_path / "bad", """
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata:
          name: bad
        spec:
          type: service
          steps:
            - id: ok
              action: debug:log
            - id: missing-action
              input: {}
        """)
    with pytest.raises(TemplateFormatError) as info:
        load_template(d)
    assert "spec.steps[1].action: Field required" in str(info.value)
    assert info.value.line == 10


def test_wrong_api_version_is_explained(tmp_path: Path) -> None:
    d = write_template(tmp_path / "old", """
        apiVersion: backstage.io/v1beta2
        kind: Template
        metadata: {name: old}
        spec: {type: service}
        """)
    with pytest.raises(TemplateFormatError, match=r"must be 'scaffolder\.backstage\.io/v1beta3'") as info:
        load_template(d)
    assert info.value.line == 1


def test_repeated_step_ids_run_as_in_backstage(tmp_path: Path) -> None:
    # Backstage runs both; the last one's output is steps.a
    d = write_template(tmp_path / "dup", """
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {name: dup}
        spec:
          type: service
          steps:
            - {id: a, action: debug:log}
            - {id: b, action: debug:log, input: {message: "${{ steps.a.output.x }}"}}
            - {id: a, action: debug:log}
            - {id: c, action: debug:log, input: {message: "${{ steps['a'].output.x }}"}}
        """)
    steps = load_template(d).spec.steps
    assert [s.id for s in steps] == ["a#1", "b", "a", "c"]
    # b runs while the first `a` is the latest: it reads that one, c the second
    assert steps[1].input == {"message": "${{ steps['a#1'].output.x }}"}
    assert steps[3].input == {"message": "${{ steps['a'].output.x }}"}


def test_yaml_is_read_as_backstage_reads_it(tmp_path: Path) -> None:
    # YAML 1.2 core schema: `no`/`on` are strings, 017 is seventeen
    d = write_template(tmp_path / "yaml12", """
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {name: yaml12}
        spec:
          type: service
          parameters:
            properties:
              answer: {type: string, default: no}
              port: {type: integer, default: 017}
              flag: {type: boolean, default: false}
          steps: []
        """)
    parameters = load_template(d).spec.parameters
    assert isinstance(parameters, dict)
    props = parameters["properties"]
    assert props["answer"]["default"] == "no"
    assert props["port"]["default"] == 17
    assert props["flag"]["default"] is False


def test_placeholders_read_files_next_to_the_template(tmp_path: Path) -> None:
    d = write_template(tmp_path / "ph", """
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {name: ph, description: {$text: ./description.txt}}
        spec:
          type: service
          parameters: {$yaml: ./parameters.yaml}
          steps: {$json: ./steps.json}
        """)
    (d / "description.txt").write_text("From a file\n")
    (d / "parameters.yaml").write_text("- properties: {name: {type: string, default: off}}\n")
    (d / "steps.json").write_text('[{"id": "log", "action": "debug:log"}]')
    template = load_template(d)
    assert template.metadata.description == "From a file\n"
    assert isinstance(template.spec.parameters, list)
    assert template.spec.parameters[0]["properties"]["name"]["default"] == "off"
    assert [s.id for s in template.spec.steps] == ["log"]


@pytest.mark.parametrize("target, problem", [
    ("./missing.yaml", "no such file"),
    ("../../outside.yaml", "leads outside"),
    ("https://example.com/x.yaml", "must be a path"),
])
def test_bad_placeholders_are_one_line_errors(tmp_path: Path, target: str,
                                              problem: str) -> None:
    d = write_template(tmp_path / "a" / "ph", f"""
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {{name: ph}}
        spec:
          type: service
          steps: {{$yaml: "{target}"}}
        """)
    with pytest.raises(TemplateFormatError, match=problem) as info:
        load_template(d)
    assert "\n" not in str(info.value)


def test_unknown_template_lists_the_available_ones(tmp_path: Path) -> None:
    write_template(tmp_path / "one", "apiVersion: scaffolder.backstage.io/v1beta3\n"
                   "kind: Template\nmetadata: {name: one}\nspec: {type: service}\n")
    catalog = TemplateCatalog([tmp_path])
    assert catalog.names() == ["one"]
    assert catalog.load("one").name == "one"
    with pytest.raises(TemplateNotFoundError) as info:
        catalog.load("two")
    assert "unknown template 'two': available templates are one" in str(info.value)


def test_templates_load_by_path_too(tmp_path: Path) -> None:
    d = write_template(tmp_path / "elsewhere" / "mine", "apiVersion: scaffolder.backstage.io/v1beta3\n"
                       "kind: Template\nmetadata: {name: mine}\nspec: {type: service}\n")
    catalog = TemplateCatalog([tmp_path / "nothing-here"])
    assert catalog.load(str(d)).directory == d.resolve()
    assert catalog.load(str(d / "template.yaml")).name == "mine"
