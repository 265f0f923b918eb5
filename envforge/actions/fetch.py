"""fetch:template and fetch:plain: a template's skeleton directory into the run's workspace.

fetch:template renders file contents and file names with the sandboxed Jinja2 environment
(``${{ values.x }}``, as Backstage's fetch:template); fetch:plain copies as is. Nothing may land
outside the workspace: absolute names, ``..`` and symbolic links that lead out are refused.
"""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.errors import ExpressionError, PathEscapeError, TemplateError
from envforge.paths import assert_no_symlink_out, resolve_inside, safe_relative
from envforge.templating.expressions import make_environment


class FetchPlainInput(ActionInput):
    url: str = Field(description="Directory to copy, relative to the template (e.g. ./skeleton).")
    targetPath: str = Field(".", description="Where in the workspace to put the files.")


class FetchTemplateInput(FetchPlainInput):
    values: dict[str, Any] = Field(
        default_factory=dict, description="Available to the skeleton as ${{ values.* }}."
    )
    copyWithoutTemplating: list[str] = Field(
        default_factory=list, description="Globs of files copied without rendering contents."
    )
    copyWithoutRender: list[str] = Field(
        default_factory=list, description="Deprecated Backstage name of copyWithoutTemplating."
    )
    templateFileExtension: bool | str = Field(
        False,
        description="Only render files with this extension (true means .njk) and strip it.",
    )
    replace: bool = Field(False, description="Overwrite files already in the workspace.")


class FetchOutput(ActionOutput):
    targetPath: str
    files: list[str] = Field(default_factory=list, description="Files written, workspace-relative.")


def _skeleton_dir(url: str, template_dir: Path) -> Path:
    if "://" in url:
        raise TemplateError(
            f"url {url!r}: only directories inside the template are supported; "
            "use a relative path such as ./skeleton"
        )
    return resolve_inside(template_dir, url, f"template directory {template_dir.name}")


def _skeleton_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        assert_no_symlink_out(root, path, f"skeleton {root.name}")
        if path.is_file():
            files.append(path)
    return files


class FetchPlain(Action[FetchPlainInput, FetchOutput]):
    id = "fetch:plain"
    git_bound = True
    description = "Copy a directory of the template into the workspace, unchanged."
    input_model = FetchPlainInput
    output_model = FetchOutput
    supports_dry_run = True
    examples = [{"id": "fetch", "action": "fetch:plain", "input": {"url": "./static"}}]

    def run(self, ctx: ActionContext, params: FetchPlainInput) -> FetchOutput:
        source = _skeleton_dir(params.url, ctx.template_dir)
        target = resolve_inside(ctx.workspace, params.targetPath, "workspace")
        written = []
        for file in _skeleton_files(source):
            dest = target / file.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, dest)
            written.append(str(dest.relative_to(ctx.workspace)))
        ctx.logger.info("copied %d file(s) from %s to %s", len(written), params.url,
                        params.targetPath)
        return FetchOutput(targetPath=params.targetPath, files=written)

    def rollback(self, ctx: ActionContext, params: FetchPlainInput, output: FetchOutput) -> None:
        _remove_files(ctx.workspace, output.files)

    def check(self, params: FetchPlainInput, template_dir: Path) -> list[str]:
        return _check_source(params.url, template_dir)


class FetchTemplate(Action[FetchTemplateInput, FetchOutput]):
    id = "fetch:template"
    git_bound = True
    description = (
        "Render a skeleton directory into the workspace: file contents and names are "
        "templates over ${{ values.* }}."
    )
    input_model = FetchTemplateInput
    output_model = FetchOutput
    supports_dry_run = True
    examples = [
        {
            "id": "fetch-base",
            "name": "Fetch skeleton",
            "action": "fetch:template",
            "input": {"url": "./skeleton", "values": {"name": "${{ parameters.name }}"}},
        }
    ]

    def run(self, ctx: ActionContext, params: FetchTemplateInput) -> FetchOutput:
        source = _skeleton_dir(params.url, ctx.template_dir)
        target = resolve_inside(ctx.workspace, params.targetPath, "workspace")
        env = make_environment()
        context = {"values": params.values}
        verbatim = params.copyWithoutTemplating + params.copyWithoutRender
        extension = _extension(params.templateFileExtension)
        written: list[str] = []
        try:
            for file in _skeleton_files(source):
                rel = file.relative_to(source).as_posix()
                render_content = not any(fnmatch.fnmatch(rel, g) for g in verbatim)
                if extension:
                    render_content = render_content and rel.endswith(extension)
                    rel = rel[: -len(extension)] if rel.endswith(extension) else rel
                name = _render_text(env, rel, context, f"{params.url}/{rel} (file name)")
                dest = resolve_inside(target, name, "workspace")
                if dest.exists() and not params.replace:
                    raise TemplateError(
                        f"{params.url}/{rel}: {dest.relative_to(ctx.workspace)} already exists "
                        "in the workspace; set replace: true to overwrite it"
                    )
                data = file.read_bytes()
                if render_content and _is_text(data):
                    text = _render_text(env, data.decode("utf-8"), context, f"{params.url}/{rel}")
                    data = text.encode("utf-8")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
                shutil.copymode(file, dest)
                written.append(str(dest.relative_to(ctx.workspace)))
        except Exception:
            _remove_files(ctx.workspace, written)  # a failed action leaves nothing behind
            raise
        ctx.logger.info("rendered %d file(s) from %s into %s", len(written), params.url,
                        params.targetPath)
        return FetchOutput(targetPath=params.targetPath, files=written)

    def rollback(self, ctx: ActionContext, params: FetchTemplateInput, output: FetchOutput) -> None:
        _remove_files(ctx.workspace, output.files)

    def check(self, params: FetchTemplateInput, template_dir: Path) -> list[str]:
        problems = _check_source(params.url, template_dir)
        if problems:
            return problems
        env = make_environment()
        source = _skeleton_dir(params.url, template_dir)
        verbatim = params.copyWithoutTemplating + params.copyWithoutRender
        for file in _skeleton_files(source):
            rel = file.relative_to(source).as_posix()
            copied_as_is = any(fnmatch.fnmatch(rel, g) for g in verbatim)
            content = None if copied_as_is else _read_text(file)
            for text, what in ((rel, f"{rel} (file name)"), (content, rel)):
                if text is None or ("${{" not in text and "{%" not in text):
                    continue
                try:
                    env.parse(text)
                except TemplateSyntaxError as e:
                    problems.append(f"{params.url}/{what}:{e.lineno}: {e.message}")
        return problems


def _extension(setting: bool | str) -> str:
    if setting is True:
        return ".njk"
    if isinstance(setting, str) and setting:
        return setting if setting.startswith(".") else f".{setting}"
    return ""


def _render_text(env: Any, text: str, context: dict[str, Any], where: str) -> str:
    if "${{" not in text and "{%" not in text:
        return text
    try:
        rendered: str = env.from_string(text).render(**context)
        return rendered
    except UndefinedError as e:
        raise ExpressionError(_with_line(where, e), "values", e.message or str(e)) from None
    except SecurityError as e:
        raise ExpressionError(_with_line(where, e), "…", f"not allowed in the sandbox ({e})") \
            from None
    except TemplateSyntaxError as e:
        raise ExpressionError(f"{where}:{e.lineno}", "…", f"syntax: {e.message}") from None


def _with_line(where: str, error: BaseException) -> str:
    """Jinja rewrites tracebacks so template frames carry the template's own line numbers."""
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"{where}:{line}" if line else where


def _is_text(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_text(file: Path) -> str | None:
    data = file.read_bytes()
    return data.decode("utf-8") if _is_text(data) else None


def _check_source(url: str, template_dir: Path) -> list[str]:
    try:
        source = _skeleton_dir(url, template_dir)
        if not source.is_dir():
            return [f"url {url!r}: no such directory in template {template_dir.name}"]
        _skeleton_files(source)
    except (PathEscapeError, TemplateError) as e:
        return [str(e)]
    return []


def _remove_files(workspace: Path, files: list[str]) -> None:
    for rel in files:
        path = workspace.joinpath(*safe_relative(rel, "workspace").parts)
        if path.is_file() or path.is_symlink():
            path.unlink()
        parent = path.parent
        while parent != workspace and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


ACTIONS: list[type[Action[Any, Any]]] = [FetchTemplate, FetchPlain]

__all__ = ["ACTIONS", "FetchPlain", "FetchTemplate"]
