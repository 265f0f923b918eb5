from __future__ import annotations

import pytest

from envforge.summary.artifact import artifact_key


@pytest.mark.parametrize(
    ("name", "key"),
    [("pr-42", "env-pr-42"), ("PR_42.x", "env-pr-42-x"), ("--", "env-unnamed")],
)
def test_artifact_key_fits_prefects_alphabet(name: str, key: str) -> None:
    assert artifact_key(name) == key
