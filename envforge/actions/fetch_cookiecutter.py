"""fetch:cookiecutter: Backstage's stock action, with the real ``cookiecutter`` package.

As Backstage does it: the fetched folder becomes the contents of a cookiecutter template whose
``cookiecutter.json`` is the step's ``values`` (plus ``_copy_without_render``); cookiecutter
renders it with ``--no-input`` (so defaults that refer to other values are rendered too) and
the generated project's files land in ``targetPath``.

A template is data, not code, so three things of cookiecutter are refused or disabled, and
the docs say so: hooks never run (``accept_hooks=False``; in Backstage's layout a fetched
``hooks/`` folder is plain project content anyway), ``extensions`` beyond cookiecutter's
built-in ones and the ``_extensions``/``_jinja2_env_vars`` keys (Python imports and Jinja2
options) are an error, and cookiecutter's Jinja2 environment is swapped, for the duration of
the render, for the same environment on Jinja2's sandbox (no attribute escapes), under the
render time budget.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput
from envforge.actions.fetch import FetchOutput, remove_files, skeleton_dir, skeleton_files
from envforge.core.paths import resolve_inside
from envforge.errors import ExpressionError, TemplateError
from envforge.templating.budget import BudgetExceeded, deadline, load_budget

#: cookiecutter's own extensions (always loaded by it); nothing else may be named
BUILTIN_EXTENSIONS = frozenset({
    "cookiecutter.extensions.JsonifyExtension", "cookiecutter.extensions.RandomStringExtension",
    "cookiecutter.extensions.SlugifyExtension", "cookiecutter.extensions.TimeExtension",
    "cookiecutter.extensions.UUIDExtension", "jinja2_time.TimeExtension",
})
_REFUSED_KEYS = ("_extensions", "_jinja2_env_vars")
#: the folder Backstage fetches into: it renders to "contents", the generated project
_CONTENTS = "{{cookiecutter and 'contents'}}"
_PATCH_LOCK = threading.Lock()


class FetchCookiecutterInput(ActionInput):
    url: str = Field(description="Folder of the cookiecutter template contents: relative to "
                     "the template, or an allowlisted remote URL.")
    targetPath: str = Field("./", description="Where in the workspace to put the project.")
    values: dict[str, Any] = Field(default_factory=dict,
                                   description="cookiecutter.json: {{ cookiecutter.* }}.")
    copyWithoutRender: list[str] = Field(default_factory=list,
                                         description="Globs copied without rendering.")
    extensions: list[str] = Field(default_factory=list, description="Only cookiecutter's "
                                  "built-in extensions; others are code and are refused.")
    imageName: str | None = Field(None, description="Backstage's Docker image; not used.")
    token: str | None = Field(None, description="Token for a remote URL (never logged).")


class FetchCookiecutter(Action[FetchCookiecutterInput, FetchOutput]):
    id = "fetch:cookiecutter"
    git_bound = True
    description = ("Render a cookiecutter template (the real cookiecutter package, sandboxed, "
                   "hooks never run) into the workspace.")
    input_model = FetchCookiecutterInput
    output_model = FetchOutput
    supports_dry_run = True
    examples = [{"id": "fetch", "action": "fetch:cookiecutter",
                 "input": {"url": "./skeleton", "values": {"name": "${{ parameters.name }}"}}}]

    def run(self, ctx: ActionContext, params: FetchCookiecutterInput) -> FetchOutput:
        _refuse_code(params)
        source = skeleton_dir(params.url, ctx.template_dir, params.token, ctx.capabilities)
        if not source.is_dir():
            raise TemplateError(f"url {params.url!r}: no such folder {source}; fix the step's "
                                "url")
        target = resolve_inside(ctx.workspace, params.targetPath, "workspace")
        written: list[str] = []
        with tempfile.TemporaryDirectory(prefix="envforge-cookiecutter-") as tmp:
            project = render_cookiecutter(source, params, Path(tmp))
            try:
                for file in sorted(p for p in project.rglob("*") if p.is_file()):
                    dest = resolve_inside(target, file.relative_to(project).as_posix(),
                                          "workspace")
                    rel = dest.relative_to(ctx.workspace).as_posix()
                    ctx.files.write_bytes(rel, file.read_bytes(),
                                          executable=bool(file.stat().st_mode & 0o111))
                    written.append(rel)
            except Exception:
                remove_files(ctx.workspace, written)
                raise
        ctx.logger.info("cookiecutter rendered %d file(s) from %s into %s (hooks not run)",
                        len(written), params.url, params.targetPath)
        return FetchOutput(targetPath=params.targetPath, files=written)

    def rollback(self, ctx: ActionContext, params: FetchCookiecutterInput,
                 output: FetchOutput) -> None:
        remove_files(ctx.workspace, output.files)


def _refuse_code(params: FetchCookiecutterInput) -> None:
    unknown = [e for e in params.extensions if e not in BUILTIN_EXTENSIONS]
    if unknown:
        raise TemplateError(f"fetch:cookiecutter: extensions {', '.join(unknown)} are Python "
                            "code and are not loaded; use cookiecutter's built-in filters or "
                            "fetch:template")
    refused = [k for k in _REFUSED_KEYS if k in params.values]
    if refused:
        raise TemplateError(f"fetch:cookiecutter: values key(s) {', '.join(refused)} load code "
                            "or change the renderer and are not accepted")


class _SandboxedCookiecutterEnvironment(SandboxedEnvironment):
    """cookiecutter's StrictEnvironment (its built-in extensions, StrictUndefined) on
    Jinja2's sandbox."""

    def __init__(self, *, context: dict[str, Any] | None = None, **kwargs: Any) -> None:
        kwargs.pop("extensions", None)
        super().__init__(undefined=StrictUndefined, extensions=sorted(
            e for e in BUILTIN_EXTENSIONS if e.startswith("cookiecutter.")), **kwargs)


@contextmanager
def _sandboxed_cookiecutter() -> Iterator[None]:
    import cookiecutter.utils  # type: ignore[import-untyped]

    with _PATCH_LOCK:
        original = cookiecutter.utils.StrictEnvironment
        cookiecutter.utils.StrictEnvironment = _SandboxedCookiecutterEnvironment
        try:
            yield
        finally:
            cookiecutter.utils.StrictEnvironment = original


def render_cookiecutter(source: Path, params: FetchCookiecutterInput, work: Path) -> Path:
    """The generated project folder (under ``work``), as Backstage's runner lays it out."""
    from cookiecutter.exceptions import CookiecutterException  # type: ignore[import-untyped]
    from cookiecutter.generate import (  # type: ignore[import-untyped]
        generate_context,
        generate_files,
    )
    from cookiecutter.prompt import prompt_for_config  # type: ignore[import-untyped]
    from jinja2 import TemplateError as JinjaTemplateError
    from jinja2.exceptions import SecurityError

    template_dir = work / "template"
    contents = template_dir / _CONTENTS
    for file in skeleton_files(source):  # links that lead out are refused here
        dest = contents / file.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(file.read_bytes())
        dest.chmod(file.stat().st_mode & 0o777)
    config = {**params.values, "_copy_without_render": params.copyWithoutRender}
    (template_dir / "cookiecutter.json").write_text(json.dumps(config), encoding="utf-8")
    output = work / "output"
    output.mkdir()
    budget = load_budget()
    try:
        with deadline(budget.seconds), _sandboxed_cookiecutter():
            context = generate_context(str(template_dir / "cookiecutter.json"))
            context["cookiecutter"] = prompt_for_config(context, no_input=True)
            project = generate_files(repo_dir=str(template_dir), context=context,
                                     output_dir=str(output), accept_hooks=False)
    except BudgetExceeded:
        raise ExpressionError(f"fetch:cookiecutter {params.url}", "…",
                              f"ran out of its time budget ({budget.seconds:g} s)") from None
    except (SecurityError, JinjaTemplateError, CookiecutterException, TypeError,
            ValueError) as e:  # a filter failing on an undefined value, too
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TemplateError(f"fetch:cookiecutter {params.url}: {type(e).__name__}: "
                            f"{message[:300]}") from None
    return Path(project)


ACTIONS: list[type[Action[Any, Any]]] = [FetchCookiecutter]
