"""A whole collection dry-run by envforge and by the nunjucks oracle: the same workspace,
byte for byte (shared ../ skeletons, repeated step ids, placeholders, YAML 1.2, each, if)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.backstage_oracle.client import Oracle
from tests.backstage_oracle.collections import compare_template, template_dirs

SERVICE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: service
  description: {$text: ./description.txt}
spec:
  owner: group:default/platform
  type: service
  parameters:
    - title: Service
      required: [name, owner]
      properties:
        name: {type: string, default: demo-service}
        owner: {type: string, default: group:default/team-a}
        lombok: {type: boolean, default: false}
        answer: {type: string, default: no}
        javaVersion: {type: number, default: 17}
        tags: {type: array, items: {type: string}, default: [web, api]}
    - {$yaml: ./more-parameters.yaml}
  steps:
    - id: fetch
      action: fetch:template
      input:
        url: ../shared/skeleton
        values:
          name: ${{ parameters.name }}
          title: ${{ parameters.name | title }}
          owner: "${{ parameters.owner | parseEntityRef({ defaultKind: 'group' }) }}"
          lombok: ${{ parameters.lombok }}
          answer: ${{ parameters.answer }}
          javaVersion: ${{ parameters.javaVersion }}
          tags: ${{ parameters.tags }}
          meta: ${{ parameters }}
          slug: ${{ parameters.missing + "/" + parameters.missing }}
        copyWithoutTemplating: [".github/workflows/*"]
    - id: fetch
      action: fetch:template
      if: ${{ parameters.tags.length > 0 }}
      input:
        url: ./extra
        targetPath: extra
        values: {name: "${{ parameters.name.replaceAll('-', '_') }}"}
    - id: each
      each: ${{ parameters.tags }}
      action: fetch:template:file
      input:
        url: ./extra/tag.txt
        targetPath: tags/${{ each.value }}.txt
        values: {tag: "${{ each.value }}", index: "${{ each.key }}"}
"""

SKELETON = {
    "shared/skeleton/README.md":
        "# ${{ values.title }}\n\nOwner: ${{ values.owner.name }} (${{ values.owner.kind }})\n"
        "Answer: ${{ values.answer }} Java ${{ values.javaVersion }} lombok=${{ values.lombok }}\n"
        "Tags: ${{ values.tags }} / ${{ values.tags | join(' ') }}\nMeta: ${{ values.meta }}\n"
        "Slug: ${{ values.slug }}\n",
    "shared/skeleton/${{ values.name }}/index.html":
        "<script>if (a === b && c !== d) {}</script>\n${{ values.name | upper }}\n",
    "shared/skeleton/.github/workflows/ci.yml": "run: echo ${{ github.sha }} ${{ values.name }}\n",
    "shared/skeleton/package.json":
        '{\n  "name": "${{ values.name }}",\n  "meta": "${{ values.meta }}",\n'
        '  "tags": ${{ values.tags | dump }}\n}\n',
    "service/description.txt": "A service\n",
    "service/more-parameters.yaml": "title: More\nproperties:\n  debug: {type: boolean}\n",
    "service/extra/notes.md": "${{ values.name }}\n",
    "service/extra/tag.txt": "${{ values.index }}: ${{ values.tag | capitalize }}\n",
}


@pytest.fixture()
def collection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "collection"
    (root / "service").mkdir(parents=True)
    (root / "service" / "template.yaml").write_text(textwrap.dedent(SERVICE).lstrip())
    for rel, content in SKELETON.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    monkeypatch.setenv("ENVFORGE_TEMPLATES_PATH", str(root))  # the catalog root
    return root


@pytest.mark.parametrize("mode", ["all", "required"])
def test_a_collection_dry_runs_to_the_files_backstage_writes(
        oracle: Oracle, collection: Path, mode: str) -> None:
    rows = [compare_template(oracle, d, mode) for d in template_dirs([collection])]
    assert [(r.template, r.envforge, r.oracle) for r in rows] == [("service", "ok", "ok")]
    assert rows[0].files >= 8
    assert rows[0].identical, rows[0].difference
