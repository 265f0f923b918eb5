"""fetch:cookiecutter with the real cookiecutter package: Backstage's layout, no hooks, no
extensions, no sandbox escapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.actions.fetch_cookiecutter import FetchCookiecutter, FetchCookiecutterInput
from envforge.actions.registry import default_registry
from envforge.errors import TemplateError
from tests.unit.actions.helpers import fetch_context, write_skeleton


def test_renders_as_backstage_lays_it_out(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {
        "README.md": "# {{ cookiecutter.name }}\n{{ cookiecutter.slug }}\n",
        "{{ cookiecutter.name }}/main.py": "print('{{ cookiecutter.name | upper }}')\n",
        "raw/keep.txt": "{{ not rendered }}\n",
        "hooks/post_gen_project.py": "open('/tmp/ef-pwned', 'w')\n",
    })
    ctx = fetch_context(tmp_path)
    params = FetchCookiecutterInput(
        url="./skeleton", targetPath="app",
        values={"name": "demo", "slug": "{{ cookiecutter.name }}-svc"},
        copyWithoutRender=["raw/*"])
    out = FetchCookiecutter().run(ctx, params)
    ws = ctx.workspace
    assert (ws / "app/README.md").read_text() == "# demo\ndemo-svc\n"
    assert (ws / "app/demo/main.py").read_text() == "print('DEMO')\n"
    assert (ws / "app/raw/keep.txt").read_text() == "{{ not rendered }}\n"
    # in Backstage's layout a fetched hooks/ folder is project content, and no hook runs
    assert (ws / "app/hooks/post_gen_project.py").is_file()
    assert not Path("/tmp/ef-pwned").exists()
    FetchCookiecutter().rollback(ctx, params, out)
    assert list(ws.rglob("*")) == []


def test_sandbox_escapes_are_refused(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {"x.txt": "{{ cookiecutter.__class__.__mro__[1].__subclasses__() }}"})
    with pytest.raises(TemplateError, match="SecurityError: access to attribute") as info:
        FetchCookiecutter().run(fetch_context(tmp_path), FetchCookiecutterInput(url="./skeleton"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("params, problem", [
    ({"extensions": ["local_extensions.Evil"]}, "are Python code"),
    ({"values": {"_extensions": ["x"]}}, "_extensions"),
    ({"values": {"_jinja2_env_vars": {"finalize": "x"}}}, "_jinja2_env_vars"),
    ({"url": "./missing"}, "no such folder"),
])
def test_code_and_bad_input_are_refused_in_one_line(tmp_path: Path, params: dict[str, object],
                                                    problem: str) -> None:
    write_skeleton(tmp_path, {"x.txt": "x"})
    with pytest.raises(TemplateError, match=problem) as info:
        FetchCookiecutter().run(fetch_context(tmp_path), FetchCookiecutterInput.model_validate(
            {"url": "./skeleton", **params}))
    assert "\n" not in str(info.value)


def test_it_is_a_stock_action() -> None:
    assert "fetch:cookiecutter" in default_registry()
