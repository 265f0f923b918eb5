"""Every spelling a filesystem may take for .git is outside any template's scope."""

from __future__ import annotations

import pytest

from envforge.git.publish_scope import gitops_scope_problem, path_problem


@pytest.mark.parametrize("target", [".git/hooks", ".GIT/config", ".git /config", ".git./x",
                                    "services/shop/GIT~1/config", ".g\u200cit/hooks",
                                    "services/shop/.Git"])
def test_git_in_any_spelling_is_refused(target: str) -> None:
    assert "metadata" in (path_problem(target) or "")
    assert gitops_scope_problem(target, "pr-1") is not None


def test_ordinary_names_that_contain_git_are_fine() -> None:
    assert path_problem("services/shop/.github/workflows") is None
    assert path_problem("services/shop/gitops.yaml") is None
