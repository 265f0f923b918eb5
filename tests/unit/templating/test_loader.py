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


def test_duplicate_step_ids_are_refused(tmp_path: Path) -> None:
    d = write_template(tmp_path / "dup", """
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {name: dup}
        spec:
          type: service
          steps:
            - {id: a, action: debug:log}
            - {id: a, action: debug:log}
        """)
    with pytest.raises(TemplateFormatError, match="step id 'a' is used twice"):
        load_template(d)


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
