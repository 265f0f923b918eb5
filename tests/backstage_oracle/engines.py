"""envforge's side of the differential tests: the same entry points a run uses."""

from __future__ import annotations

from typing import Any

from envforge.actions.fetch import (
    FetchTemplateInput,
    render_skeleton_text,
    skeleton_context,
    skeleton_environment,
)
from envforge.templating.expressions import ExpressionEngine
from tests.backstage_oracle.client import UNDEFINED

_ENGINE = ExpressionEngine()


def render_file(text: str, values: dict[str, Any], **options: Any) -> str:
    """A skeleton file as fetch:template renders it (``cookiecutterCompat``, ``trimBlocks``,
    ``lstripBlocks`` as its inputs)."""
    params = FetchTemplateInput(url=".", values=values, **options)
    return render_skeleton_text(skeleton_environment(params), text, skeleton_context(params),
                                "skeleton/file")


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """A template.yaml value as a step's action receives it; UNDEFINED when it is dropped."""
    rendered = _ENGINE.render_value({"v": value}, context, "step 'x' field input")
    return rendered.get("v", UNDEFINED)
