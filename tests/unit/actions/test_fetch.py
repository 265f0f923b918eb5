import os
from pathlib import Path

import pytest

from envforge.actions.fetch import FetchPlain, FetchPlainInput, FetchTemplate, FetchTemplateInput
from envforge.errors import ExpressionError, PathEscapeError, TemplateError
from tests.unit.actions.helpers import fetch_context, write_skeleton


def test_renders_contents_and_file_names(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {
        "${{ values.name }}/main.py": "print('${{ values.name }}')\n",
        "static/raw.txt": "keep ${{ values.name }} as written\n",
        "Dockerfile": "{% if values.debug %}ENV DEBUG=1\n{% endif %}EXPOSE ${{ values.port }}\n",
    })
    ctx = fetch_context(tmp_path)
    params = FetchTemplateInput(url="./skeleton", targetPath="app",
                                values={"name": "shop", "port": 8080, "debug": True},
                                copyWithoutTemplating=["static/*"])
    out = FetchTemplate().run(ctx, params)
    ws = ctx.workspace
    assert sorted(out.files) == ["app/Dockerfile", "app/shop/main.py", "app/static/raw.txt"]
    assert (ws / "app/shop/main.py").read_text() == "print('shop')\n"
    assert (ws / "app/static/raw.txt").read_text() == "keep ${{ values.name }} as written\n"
    assert (ws / "app/Dockerfile").read_text() == "ENV DEBUG=1\nEXPOSE 8080\n"
    FetchTemplate().rollback(ctx, params, out)
    assert list(ws.iterdir()) == []


def test_template_file_extension_renders_only_marked_files(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {"a.txt.njk": "${{ values.x }}", "b.txt": "${{ values.x }}"})
    ctx = fetch_context(tmp_path)
    FetchTemplate().run(ctx, FetchTemplateInput(url="./skeleton", values={"x": 1},
                                                templateFileExtension=True))
    assert (ctx.workspace / "a.txt").read_text() == "1"
    assert (ctx.workspace / "b.txt").read_text() == "${{ values.x }}"


def test_undefined_values_render_empty_as_in_backstage(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {"conf/app.yaml": "a: 1\nb: '${{ values.nope }}'\n"
                                          "{% if values.opt %}c: 1\n{% endif %}"})
    ctx = fetch_context(tmp_path)
    FetchTemplate().run(ctx, FetchTemplateInput(url="./skeleton"))
    assert (ctx.workspace / "conf/app.yaml").read_text() == "a: 1\nb: ''\n"


def test_a_failing_expression_names_the_file_line_and_expression(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {"ok.txt": "fine", "conf/app.yaml":
                         "a: ${{ values.name }}\nb: ${{ values.name.ljust(10 ** 9) }}\n"})
    ctx = fetch_context(tmp_path)
    with pytest.raises(ExpressionError) as info:
        FetchTemplate().run(ctx, FetchTemplateInput(url="./skeleton", values={"name": "x"}))
    message = str(info.value)
    assert message.startswith("./skeleton/conf/app.yaml:2:")
    assert "values.name.ljust(10 ** 9)" in message and "refused by the sandbox" in message
    assert list(ctx.workspace.rglob("*")) == []  # the failed action left nothing behind


@pytest.mark.parametrize("name", ["../../escape.txt", "a/../../b"])
def test_rendered_file_names_cannot_leave_the_workspace(tmp_path: Path, name: str) -> None:
    write_skeleton(tmp_path, {"${{ values.path }}": "x"})
    ctx = fetch_context(tmp_path)
    with pytest.raises(PathEscapeError, match="escapes the workspace"):
        FetchTemplate().run(ctx, FetchTemplateInput(url="./skeleton", values={"path": name}))
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize("name", ["/etc/evil", "", "a//b", "dir/"])
def test_absolute_or_empty_rendered_names_are_skipped(tmp_path: Path, name: str) -> None:
    write_skeleton(tmp_path, {"${{ values.path }}": "x", "kept.txt": "y"})
    ctx = fetch_context(tmp_path)
    out = FetchTemplate().run(ctx, FetchTemplateInput(url="./skeleton", values={"path": name}))
    assert out.files == ["kept.txt"]


def test_target_path_cannot_leave_the_workspace(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {"a": "x"})
    with pytest.raises(PathEscapeError, match=r"'\.\.' is not allowed"):
        FetchPlain().run(fetch_context(tmp_path), FetchPlainInput(url="./skeleton", targetPath="../out"))


def test_source_url_cannot_leave_the_template(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {"a": "x"})
    with pytest.raises(PathEscapeError, match="outside the repository/catalog"):
        FetchPlain().run(fetch_context(tmp_path), FetchPlainInput(url="../../etc"))
    with pytest.raises(TemplateError, match=r"ENVFORGE_FETCH_ALLOW"):
        FetchPlain().run(fetch_context(tmp_path), FetchPlainInput(url="https://example.com/x"))


def test_symlinks_leading_out_of_the_skeleton_are_refused(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {"a.txt": "x"})
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    os.symlink(secret, tmp_path / "tpl" / "skeleton" / "link.txt")
    ctx = fetch_context(tmp_path)
    with pytest.raises(PathEscapeError, match="symbolic link"):
        FetchPlain().run(ctx, FetchPlainInput(url="./skeleton"))
    assert list(ctx.workspace.rglob("*")) == []


def test_a_symlinked_workspace_subdirectory_cannot_redirect_writes(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {"a.txt": "x"})
    ctx = fetch_context(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, ctx.workspace / "out")
    with pytest.raises(PathEscapeError):
        FetchPlain().run(ctx, FetchPlainInput(url="./skeleton", targetPath="out"))
    assert list(outside.iterdir()) == []


def test_existing_files_are_kept_unless_replace(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {"a.txt": "${{ values.v }}"})
    ctx = fetch_context(tmp_path)
    FetchTemplate().run(ctx, FetchTemplateInput(url="./skeleton", values={"v": 1}))
    out = FetchTemplate().run(ctx, FetchTemplateInput(url="./skeleton", values={"v": 2}))
    assert out.files == [] and (ctx.workspace / "a.txt").read_text() == "1"
    FetchTemplate().run(ctx, FetchTemplateInput(url="./skeleton", values={"v": 2}, replace=True))
    assert (ctx.workspace / "a.txt").read_text() == "2"


def test_check_finds_syntax_errors_in_skeleton_files(tmp_path: Path) -> None:
    write_skeleton(tmp_path, {"ok.txt": "${{ values.a }}", "bad.txt": "x\n${{ values.( }}\n"})
    problems = FetchTemplate().check(FetchTemplateInput(url="./skeleton"), tmp_path / "tpl")
    assert len(problems) == 1 and "bad.txt:2" in problems[0]
    assert "no such directory" in FetchTemplate().check(
        FetchTemplateInput(url="./nope"), tmp_path / "tpl")[0]
