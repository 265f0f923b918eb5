"""The CLI passes per-command values down as settings instead of setting environment variables:
``run --user`` reaches ``${{ user.ref }}`` through the services' settings, ``--catalog-root``
is an override of ENVFORGE_TEMPLATES_PATH for the command only; os.environ is left alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envforge.cli import main
from envforge.settings import load_settings
from tests.unit.backstage.test_backstage_format import make

TEMPLATE = """\
  steps:
    - id: fetch
      action: fetch:template
      input:
        url: ../../skeletons/who
        values: {who: '${{ user.ref }}'}
"""


def test_run_user_and_catalog_root_are_handed_down(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVFORGE_USER", raising=False)
    monkeypatch.delenv("ENVFORGE_TEMPLATES_PATH", raising=False)
    collection = tmp_path / "collection"
    (collection / "skeletons/who").mkdir(parents=True)
    (collection / "skeletons/who/who.txt").write_text("${{ values.who }}\n")
    make(collection / "templates", TEMPLATE, name="who")
    before = dict(os.environ)
    out = tmp_path / "kept"
    assert main(["run", str(collection / "templates/who"), "--dry-run", "--keep-files",
                 str(out), "--catalog-root", str(collection),
                 "--user", "user:default/jane"]) == 0
    assert (out / "who.txt").read_text() == "user:default/jane\n"
    assert dict(os.environ) == before  # nothing set for later readers
    assert collection.resolve() not in load_settings().paths.templates_path  # command only
