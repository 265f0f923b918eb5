"""fetch:template's file loop against Backstage's (real globby and nunjucks in the oracle):
the same files with the same bytes, for each fetch:template option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envforge.actions.base import ActionContext
from envforge.actions.fetch import FetchTemplate, FetchTemplateInput
from envforge.errors import TemplateError
from tests.backstage_oracle.client import Oracle

SKELETON = {
    "README.md": "# ${{ values.name | title }}\n\nowner: ${{ values.owner }}\n",
    "${{ values.name }}/main.js": "if (a === b) { console.log('${{ values.name }}'); }\n",
    "static/raw.txt": "keep ${{ values.name }} as written\n",
    "static/${{ values.name }}.txt": "named ${{ values.name }}\n",
    ".github/workflows/ci.yml": "run: echo ${{ github.sha }} ${{ values.name }}\n",
    "docs/index.md.njk": "${{ values.name }} docs\n",
    "docs/plain.md": "${{ values.name }} plain\n",
    "{% if values.withDocker %}Dockerfile{% endif %}": "FROM x\n",
    "{% if values.withDocker %}docker{% endif %}/compose.yml": "v: ${{ values.count }}\n",
    "scripts/run.sh": "#!/bin/sh\n# {# not a comment #} ${{ values.count + 1 }}\n",
    "data/config.json": '{"name": "${{ values.name }}", "tags": "${{ values.tags }}"}\n',
}
VALUES: dict[str, Any] = {"name": "demo-service", "owner": "group:default/team-a",
                          "withDocker": False, "count": 1, "tags": ["a", "b"]}

OPTIONS: list[dict[str, Any]] = [
    {},
    {"copyWithoutTemplating": ["static/*"]},
    {"copyWithoutTemplating": ["./static", ".github/workflows/*"]},
    {"copyWithoutRender": ["static/**"]},
    {"copyWithoutTemplating": ["**/*.{yml,json}", "!data/*"]},
    {"templateFileExtension": True},
    {"templateFileExtension": "md"},
    {"targetPath": "./sub/dir"},
    {"values": {**VALUES, "withDocker": True}},
]


def _write_skeleton(root: Path) -> None:
    for rel, content in SKELETON.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("options", OPTIONS, ids=[str(o) for o in OPTIONS])
def test_file_loop_writes_what_backstage_writes(oracle: Oracle, tmp_path: Path,
                                                options: dict[str, Any]) -> None:
    skeleton = tmp_path / "tpl" / "skeleton"
    _write_skeleton(skeleton)
    step_input = {"url": "./skeleton", "values": VALUES, **options}
    expected_dir = tmp_path / "oracle"
    expected_dir.mkdir()
    oracle.render_tree(skeleton, expected_dir, step_input)

    workspace = tmp_path / "ws"
    workspace.mkdir()
    ctx = ActionContext(run_id="r", step_id="fetch", template_name="t",
                        template_dir=tmp_path / "tpl", workspace=workspace)
    FetchTemplate().run(ctx, FetchTemplateInput.model_validate(step_input))
    assert _files(workspace) == _files(expected_dir)


def test_a_skeleton_folder_that_does_not_exist_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "ws").mkdir()
    ctx = ActionContext(run_id="r", step_id="fetch", template_name="t",
                        template_dir=tmp_path / "tpl", workspace=tmp_path / "ws")
    with pytest.raises(TemplateError, match="no such folder") as info:
        FetchTemplate().run(ctx, FetchTemplateInput(url="./nothing-here"))
    assert "\n" not in str(info.value)
