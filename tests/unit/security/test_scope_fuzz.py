"""Fuzzing the publish scope: whatever a template renders as targetPath, what passes the
check is under services/<label>/ or environments/<env>/<folder>/, with no .git, no control
character and no '..' anywhere. Bounded (fixed examples, no deadline)."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from envforge.actions.base import ActionContext
from envforge.core.names import is_dns_label
from envforge.git.publish_scope import gitops_scope_problem
from envforge.gitops.actions import recorded_template

pytestmark = pytest.mark.fuzz
parts = st.sampled_from(["services", "environments", "argocd", ".git", ".GIT", "..", ".", "",
                         "shop", "pr-1", "pr-2", "a\n", "environment.yaml", "hooks", "x y"]) \
    | st.text(max_size=8)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(parts, max_size=5), st.sampled_from([None, "pr-1"]), st.booleans())
@example(["services", "nl1\n"], None, False)
@example([".git", "hooks"], "pr-1", False)
@example(["environments"], "pr-1", True)
def test_what_passes_the_scope_is_inside_it(segments: list[str], environment: str | None,
                                            absolute: bool) -> None:
    target = ("/" if absolute else "") + "/".join(segments)
    if gitops_scope_problem(target, environment) is not None:
        return
    clean = [p for p in PurePosixPath(target).parts if p not in ("", ".")]
    assert not absolute or not target.startswith("/")
    assert all(p.lower() != ".git" and p != ".." for p in clean)
    assert not any(ord(c) < 32 or ord(c) == 127 for c in target)
    if clean[0] == "services":
        assert is_dns_label(clean[1])
    else:
        assert clean[0] == "environments" and len(clean) >= 3
        assert clean[1] == (environment or clean[1]) and clean[2] != "environment.yaml"


def test_a_template_given_by_path_is_recorded_by_path(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """D16: 'envforge env update' loads record.spec.template again; a template outside the
    templates path must be recorded by its directory, one inside it by name."""
    inside, outside = tmp_path / "catalog" / "shop", tmp_path / "elsewhere" / "shop"
    for d in (inside, outside):
        d.mkdir(parents=True)
        (d / "template.yaml").write_text("metadata: {name: shop}\n")
    monkeypatch.setenv("ENVFORGE_TEMPLATES_PATH", str(tmp_path / "catalog"))

    def ctx(directory: Path) -> ActionContext:
        return ActionContext(run_id="r", step_id="env", template_name="shop",
                             template_dir=directory, workspace=tmp_path,
                             logger=logging.getLogger("t"))

    assert recorded_template(ctx(inside)) == "shop"
    assert recorded_template(ctx(outside)) == str(outside.resolve())
