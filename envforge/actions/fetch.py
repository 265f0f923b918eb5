"""fetch:template and fetch:plain (and their ``:file`` forms): skeletons into the workspace.

fetch:template renders file contents and names as Backstage's does (``${{ values.x }}``,
nunjucks semantics: undefined renders empty) in the bounded sandbox; fetch:plain copies as is.
Sources are the template's repository or catalog, or allowlisted remote archives and Git
repositories (:mod:`envforge.actions.fetch_sources`). Nothing may land outside the workspace:
absolute names, ``..`` and symbolic links that lead out are refused. As in Backstage, a file
whose rendered name is empty (or has an empty path segment) is skipped, and a file already in
the workspace is kept unless ``replace: true``.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError
from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.actions.fetch_sources import is_remote, resolve_source
from envforge.capabilities import Capabilities, check_path
from envforge.core.paths import assert_no_symlink_out, resolve_inside, safe_relative
from envforge.errors import ExpressionError, PathEscapeError, TemplateError
from envforge.templating.budget import BudgetExceeded, deadline
from envforge.templating.expressions import make_environment, render_text
from envforge.templating.sandbox import RENDER_WHERE, BoundedSandbox, Refused, nunjucks_to_jinja
from envforge.templating.skeleton_globs import compile_globs, matches


class FetchPlainInput(ActionInput):
    url: str = Field(description="Directory to copy: relative to the template (may reach "
                     "the rest of its repository), or an allowlisted remote URL.")
    targetPath: str = Field(".", description="Where in the workspace to put the files.")
    token: str | None = Field(None, description="Token for a remote URL (never logged).")


class FetchTemplateInput(FetchPlainInput):
    values: dict[str, Any] = Field(
        default_factory=dict, description="Available to the skeleton as ${{ values.* }}."
    )
    copyWithoutTemplating: list[str] = Field(
        default_factory=list, description="Globs of files or folders copied without rendering."
    )
    copyWithoutRender: list[str] = Field(
        default_factory=list, description="Deprecated Backstage name of copyWithoutTemplating."
    )
    templateFileExtension: bool | str = Field(
        False,
        description="Only render files with this extension (true means .njk) and strip it.",
    )
    cookiecutterCompat: bool = Field(
        False, description="Skeletons written for fetch:cookiecutter: {{ cookiecutter.x }}.")
    trimBlocks: bool = Field(False, description="Remove the first newline after a block tag.")
    lstripBlocks: bool = Field(False, description="Strip whitespace before a block tag.")
    replace: bool = Field(False, description="Overwrite files already in the workspace "
                          "(else they are kept, as in Backstage).")


class FetchOutput(ActionOutput):
    targetPath: str
    files: list[str] = Field(default_factory=list, description="Files written, workspace-relative.")


def _checked(name: str, where: str) -> str:
    """``name`` if the workspace file API would take it (NUL, 255-byte names, .git, ...):
    checked before the path is resolved, so a bad name is one line, never an OSError.
    ``..`` and absolute paths are left to resolve_inside (a PathEscapeError)."""
    text = name.replace("\\", "/")
    if text.startswith("/") or ".." in text.split("/"):
        return name
    check_path(name, where)
    return name


def _skeleton_dir(url: str, template_dir: Path, token: str | None = None,
                  capabilities: Capabilities | None = None) -> Path:
    return resolve_source(url, template_dir, token, capabilities)


def _skeleton_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        assert_no_symlink_out(root, path, f"skeleton {root.name}")
        if path.is_file():
            files.append(path)
    return files


def _skipped_name(name: str) -> bool:
    """Backstage skips a file whose rendered path is empty or has an empty segment."""
    return name.strip() == "" or name.startswith("/") or "//" in name or name.endswith("/")


class FetchPlain(Action[FetchPlainInput, FetchOutput]):
    id = "fetch:plain"
    git_bound = True
    description = "Copy a directory of the template into the workspace, unchanged."
    input_model = FetchPlainInput
    output_model = FetchOutput
    supports_dry_run = True
    examples = [{"id": "fetch", "action": "fetch:plain", "input": {"url": "./static"}}]

    def run(self, ctx: ActionContext, params: FetchPlainInput) -> FetchOutput:
        source = _skeleton_dir(params.url, ctx.template_dir, params.token, ctx.capabilities)
        _require_folder(params.url, source, ctx.template_dir)
        target = resolve_inside(ctx.workspace, _checked(params.targetPath, "targetPath"),
                                "workspace")
        written = []
        for file in _skeleton_files(source):
            dest = target / file.relative_to(source)
            if dest.exists():
                continue  # as Backstage: an existing file is kept
            rel = dest.relative_to(ctx.workspace).as_posix()
            # through the workspace file API: no link followed, never .git, budgets
            ctx.files.write_bytes(rel, file.read_bytes(), overwrite=False)
            written.append(rel)
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
        source = _skeleton_dir(params.url, ctx.template_dir, params.token, ctx.capabilities)
        _require_folder(params.url, source, ctx.template_dir)
        target = resolve_inside(ctx.workspace, _checked(params.targetPath, "targetPath"),
                                "workspace")
        env = skeleton_environment(params)
        context = skeleton_context(params)
        patterns, render_names = _copy_only_settings(params)
        globs = compile_globs(patterns, source)
        extension = _extension(params.templateFileExtension)
        label = params.url.rstrip("/")
        written: list[str] = []
        try:
            for file in _skeleton_files(source):
                rel = file.relative_to(source).as_posix()
                # Backstage's file loop: with an extension only files ending in it render
                # (and lose it); else copyWithoutTemplating keeps contents as they are but
                # still renders the name, copyWithoutRender keeps both
                if extension:
                    render_content = posixpath.splitext(posixpath.basename(rel))[1] == extension
                    name = rel[: -len(extension)] if render_content else rel
                    render_name = True
                else:
                    render_content = not matches(globs, rel)
                    render_name = render_names or render_content
                    name = rel
                if render_name:
                    name = render_skeleton_text(env, name, context, f"{label}/{rel} (file name)")
                if _skipped_name(name):
                    ctx.logger.info("%s/%s: rendered file name is empty; skipped", label, rel)
                    continue
                dest = resolve_inside(target, _checked(name, f"{label}/{rel}"), "workspace")
                if dest.exists() and not params.replace:
                    ctx.logger.info("%s already exists; kept (replace: true overwrites it)",
                                    dest.relative_to(ctx.workspace))
                    continue
                data = file.read_bytes()
                if render_content and _is_text(data):
                    text = render_skeleton_text(env, data.decode("utf-8"), context,
                                                f"{label}/{rel}")
                    data = text.encode("utf-8")
                rel_dest = dest.relative_to(ctx.workspace).as_posix()
                ctx.files.write_bytes(rel_dest, data,
                                      executable=bool(file.stat().st_mode & 0o111))
                written.append(rel_dest)
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
        if problems or is_remote(params.url):
            return problems
        env = skeleton_environment(params)
        source = _skeleton_dir(params.url, template_dir)
        globs = compile_globs(params.copyWithoutTemplating + params.copyWithoutRender, source)
        for file in _skeleton_files(source):
            rel = file.relative_to(source).as_posix()
            copied_as_is = matches(globs, rel)
            content = None if copied_as_is else _read_text(file)
            for text, what in ((rel, f"{rel} (file name)"), (content, rel)):
                if text is None or ("${{" not in text and "{%" not in text):
                    continue
                try:
                    env.parse(nunjucks_to_jinja(text))
                except TemplateSyntaxError as e:
                    problems.append(f"{params.url}/{what}:{e.lineno}: {e.message}")
        return problems


def _require_folder(url: str, source: Path, template_dir: Path) -> None:
    """Backstage fails when the skeleton folder is not there (ENOENT); so does envforge."""
    if not source.is_dir():
        raise TemplateError(f"url {url!r}: no such folder {source} (from template folder "
                            f"{template_dir}); fix the step's url")


def _copy_only_settings(params: FetchTemplateInput) -> tuple[list[str], bool]:
    """(patterns, render their names) as Backstage reads copyWithoutTemplating (names still
    rendered) and the deprecated copyWithoutRender (names kept)."""
    if params.copyWithoutRender and params.copyWithoutTemplating:
        raise TemplateError("fetch:template: copyWithoutRender and copyWithoutTemplating can "
                            "not be used at the same time; keep copyWithoutTemplating")
    if params.templateFileExtension and (params.copyWithoutRender or
                                         params.copyWithoutTemplating or
                                         params.cookiecutterCompat):
        raise TemplateError("fetch:template: templateFileExtension can not be combined with "
                            "copyWithoutRender/copyWithoutTemplating or cookiecutterCompat")
    if params.copyWithoutRender:
        return params.copyWithoutRender, False
    return params.copyWithoutTemplating, True


def skeleton_environment(params: FetchTemplateInput) -> BoundedSandbox:
    options: dict[str, Any] = {"trim_blocks": params.trimBlocks,
                               "lstrip_blocks": params.lstripBlocks}
    if params.cookiecutterCompat:
        options.update(variable_start_string="{{", variable_end_string="}}")
    env = make_environment(strict=False, **options)
    if params.cookiecutterCompat:
        env.filters["jsonify"] = env.filters["dump"]
    return env


def skeleton_context(params: FetchTemplateInput) -> dict[str, Any]:
    """``values`` (or, with cookiecutterCompat, only ``cookiecutter``), as in Backstage."""
    return {"cookiecutter" if params.cookiecutterCompat else "values": params.values}


def render_skeleton_text(env: BoundedSandbox, text: str, context: dict[str, Any],
                         where: str) -> str:
    """One skeleton file (or file name), bounded; errors name the file, line and expression."""
    start = env.variable_start_string
    if start not in text and "{%" not in text and "{#" not in text and "#}" not in text:
        return text  # nunjucks would give it back unchanged
    token = RENDER_WHERE.set(where)
    try:
        with deadline(env.budget.seconds):
            return render_text(env, env.from_string(nunjucks_to_jinja(text)), context)
    except BudgetExceeded:
        raise ExpressionError(where, _expression_at(text, None, start),
                              f"ran out of its time budget ({env.budget.seconds:g} s; "
                              "ENVFORGE_RENDER_TIMEOUT_S)") from None
    except TemplateSyntaxError as e:
        raise ExpressionError(f"{where}:{e.lineno}", _expression_at(text, e.lineno, start),
                              f"syntax: {e.message}") from None
    except Exception as e:  # undefined misuse, sandbox refusal, a failing filter
        line = _template_line(e)
        reason = str(e) if isinstance(e, Refused) else f"{type(e).__name__}: {e}"
        if isinstance(e, Refused):
            reason = f"refused by the sandbox: {reason}"
        named = re.search(r"'([^']+)' is (?:undefined|not a function)|Unable to call `([^`]+)`",
                          str(e))
        hint = next((g for g in named.groups() if g), None) if named else None
        raise ExpressionError(f"{where}:{line}" if line else where,
                              _expression_at(text, line, start, hint), reason) from None
    finally:
        RENDER_WHERE.reset(token)


def _template_line(error: BaseException) -> int | None:
    """Jinja rewrites tracebacks so template frames carry the template's own line numbers."""
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _expression_at(text: str, line: int | None, start: str, hint: str | None = None) -> str:
    """The expression on the failing line (or in the file) for the message: the one naming
    ``hint`` (the undefined name the error gives) when there is one, else the first."""
    lines = text.splitlines()
    candidates = [lines[line - 1]] if line and 0 < line <= len(lines) else []
    candidates.append(text)
    for chunk in candidates:
        begin = chunk.find(start)
        if hint:
            named = chunk.find(hint)
            if named >= 0 and chunk.rfind(start, 0, named) >= 0:
                begin = chunk.rfind(start, 0, named)
        if begin >= 0:
            end = chunk.find("}}", begin + len(start))
            found = chunk[begin + len(start): end if end >= 0 else None].strip()
            return found if len(found) <= 120 else found[:117] + "..."
        block = chunk.find("{%")
        if block >= 0:
            end = chunk.find("%}", block)
            return chunk[block: end + 2 if end >= 0 else None][:120]
    return "…"


def _extension(setting: bool | str) -> str:
    if setting is True:
        return ".njk"
    if isinstance(setting, str) and setting:
        return setting if setting.startswith(".") else f".{setting}"
    return ""


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
    if is_remote(url):
        return []  # fetched (allowlist permitting) when the step runs
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


# The skeleton helpers other fetch actions share (fetch:cookiecutter): where a url leads, the
# files under it (links that lead out refused), removing what an action wrote on rollback.
skeleton_dir = _skeleton_dir
skeleton_files = _skeleton_files
remove_files = _remove_files


class FetchPlainFileInput(ActionInput):
    url: str = Field(description="File to copy: relative to the template, or allowlisted remote.")
    targetPath: str = Field(description="Workspace-relative path of the copy.")
    token: str | None = Field(None, description="Token for a remote URL (never logged).")


class FetchTemplateFileInput(FetchPlainFileInput):
    values: dict[str, Any] = Field(default_factory=dict)
    cookiecutterCompat: bool = False
    trimBlocks: bool = False
    lstripBlocks: bool = False
    replace: bool = Field(False, description="Overwrite an existing file (else it is kept).")


def _source_file(url: str, template_dir: Path, token: str | None,
                 capabilities: Capabilities | None = None) -> Path:
    if is_remote(url):
        raise TemplateError(f"url {url!r}: fetch of a single remote file is not supported; "
                            "fetch its folder (an archive or Git URL) with fetch:plain")
    source = resolve_source(url, template_dir, token, capabilities)
    if not source.is_file():
        raise TemplateError(f"url {url!r}: no such file in template {template_dir.name}")
    return source


class FetchPlainFile(Action[FetchPlainFileInput, FetchOutput]):
    id = "fetch:plain:file"
    git_bound = True
    description = "Copy one file of the template into the workspace, unchanged."
    input_model = FetchPlainFileInput
    output_model = FetchOutput
    supports_dry_run = True
    examples = [{"id": "license", "action": "fetch:plain:file",
                 "input": {"url": "./files/LICENSE", "targetPath": "LICENSE"}}]

    def run(self, ctx: ActionContext, params: FetchPlainFileInput) -> FetchOutput:
        source = _source_file(params.url, ctx.template_dir, params.token, ctx.capabilities)
        dest = resolve_inside(ctx.workspace, _checked(params.targetPath, "targetPath"), "workspace")
        if dest.exists():
            return FetchOutput(targetPath=params.targetPath, files=[])
        rel = dest.relative_to(ctx.workspace).as_posix()
        ctx.files.write_bytes(rel, source.read_bytes(), overwrite=False)
        return FetchOutput(targetPath=params.targetPath, files=[rel])

    def rollback(self, ctx: ActionContext, params: FetchPlainFileInput,
                 output: FetchOutput) -> None:
        _remove_files(ctx.workspace, output.files)


class FetchTemplateFile(Action[FetchTemplateFileInput, FetchOutput]):
    id = "fetch:template:file"
    git_bound = True
    description = "Render one file of the template into the workspace over ${{ values.* }}."
    input_model = FetchTemplateFileInput
    output_model = FetchOutput
    supports_dry_run = True
    examples = [{"id": "readme", "action": "fetch:template:file", "input": {
        "url": "./files/README.md", "targetPath": "README.md",
        "values": {"name": "${{ parameters.name }}"}}}]

    def run(self, ctx: ActionContext, params: FetchTemplateFileInput) -> FetchOutput:
        source = _source_file(params.url, ctx.template_dir, params.token, ctx.capabilities)
        dest = resolve_inside(ctx.workspace, _checked(params.targetPath, "targetPath"), "workspace")
        if dest.exists() and not params.replace:
            return FetchOutput(targetPath=params.targetPath, files=[])
        as_dir = FetchTemplateInput(url=params.url, values=params.values,
                                    cookiecutterCompat=params.cookiecutterCompat,
                                    trimBlocks=params.trimBlocks,
                                    lstripBlocks=params.lstripBlocks)
        data = source.read_bytes()
        if _is_text(data):
            data = render_skeleton_text(skeleton_environment(as_dir), data.decode("utf-8"),
                                        skeleton_context(as_dir), params.url).encode("utf-8")
        rel = dest.relative_to(ctx.workspace).as_posix()
        ctx.files.write_bytes(rel, data)
        return FetchOutput(targetPath=params.targetPath, files=[rel])

    def rollback(self, ctx: ActionContext, params: FetchTemplateFileInput,
                 output: FetchOutput) -> None:
        _remove_files(ctx.workspace, output.files)


ACTIONS: list[type[Action[Any, Any]]] = [FetchTemplate, FetchPlain, FetchPlainFile,
                                         FetchTemplateFile]

__all__ = ["ACTIONS", "FetchPlain", "FetchPlainFile", "FetchTemplate", "FetchTemplateFile",
           "render_skeleton_text",
           "skeleton_context", "skeleton_environment"]
