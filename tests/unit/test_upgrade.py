"""Upgrade without Git: which environments are chosen, template versions, newly required
parameters, and the per-environment diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.errors import EnvforgeError
from envforge.gitops.record import TemplateVersion
from envforge.gitops.versions import describe_version, template_digest, template_version
from envforge.templating.loader import load_template
from envforge.upgrade import choose_environments, missing_required, unified_diff
from tests.helpers import write_template
from tests.unit.test_sleep import record

TEMPLATE = """
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: web%s}
spec:
  owner: group:platform
  type: service
  parameters:
    - required: [name, region]
      properties:
        name: {type: string}
        region: {type: string}
    - required: [tier]
      properties:
        tier: {type: string, default: gold}
  steps: []
"""


def test_choose_by_name_all_and_template() -> None:
    records = [record("pr-1"), record("pr-2"), record("pr-3")]
    records[2] = records[2].model_copy(update={"spec": records[2].spec.model_copy(
        update={"template": "/srv/templates/worker"})})
    chosen, missing = choose_environments(records, ["pr-2", "pr-404", "pr-2"])
    assert [r.name for r in chosen] == ["pr-2"] and missing == ["pr-404"]
    chosen, _ = choose_environments(records, all_environments=True)
    assert [r.name for r in chosen] == ["pr-1", "pr-2", "pr-3"]
    chosen, _ = choose_environments(records, template="worker")  # a template given by path
    assert [r.name for r in chosen] == ["pr-3"]
    chosen, _ = choose_environments(records, ["pr-1", "pr-3"], template="web")
    assert [r.name for r in chosen] == ["pr-1"]
    with pytest.raises(EnvforgeError, match="name the environments to upgrade"):
        choose_environments(records)


def test_missing_required_lists_every_page_and_skips_defaults(tmp_path: Path) -> None:
    template = load_template(write_template(tmp_path / "web", TEMPLATE % ""))
    assert missing_required(template, {}) == ["name", "region"]
    assert missing_required(template, {"name": "a", "region": "eu"}) == []


def test_template_version_declared_and_content_hash(tmp_path: Path) -> None:
    directory = write_template(tmp_path / "web", TEMPLATE % ", version: '2.1'",
                               {"skeleton/a.yaml": "a: 1\n"})
    version = template_version(load_template(directory))
    assert version.version == "2.1" and version.digest.startswith("sha256:")
    assert describe_version(version).startswith("2.1 (")
    before = template_digest(directory)
    (directory / "__pycache__").mkdir()
    (directory / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert template_digest(directory) == before  # caches are not content
    (directory / "skeleton" / "a.yaml").write_text("a: 2\n")
    assert template_digest(directory) != before
    (directory / "skeleton" / "a.yaml").write_text("a: 1\n")
    assert template_digest(directory) == before
    (directory / "skeleton" / "a.yaml").rename(directory / "skeleton" / "b.yaml")
    assert template_digest(directory) != before  # names count, not only bytes
    undeclared = template_version(load_template(write_template(tmp_path / "w2", TEMPLATE % "")))
    assert undeclared.version is None
    assert describe_version(undeclared) == undeclared.digest.split(":")[1][:12]
    assert describe_version(None) == "unknown"
    assert describe_version(TemplateVersion(digest="sha256:ab", envforge="0")) == "ab"


def test_unified_diff_names_added_removed_and_changed_files() -> None:
    old = {"a.yaml": "x: 1\n", "gone.yaml": "y: 1\n", "same.yaml": "z: 1\n"}
    new = {"a.yaml": "x: 2\n", "new.yaml": "w: 1\n", "same.yaml": "z: 1\n"}
    changed, diff = unified_diff(old, new)
    assert changed == ["a.yaml", "gone.yaml", "new.yaml"]
    assert "--- a/a.yaml\n+++ b/a.yaml\n" in diff and "-x: 1\n+x: 2\n" in diff
    assert "--- a/gone.yaml\n+++ /dev/null\n" in diff
    assert "--- /dev/null\n+++ b/new.yaml\n" in diff
    assert unified_diff(old, old) == ([], "")


def test_files_that_would_take_faked_outputs_are_named() -> None:
    from envforge.upgrade import faked_outputs

    old = {"m/deploy.yaml": "image: reg/app@sha256:abc\n"}
    new = {"m/deploy.yaml": "image: dry-run:image:build.image\n",
           "m/job.yaml": "x: <db:clone output url (dry run)>\n"}
    assert faked_outputs(old, new) == ["db:clone", "image:build"]
    assert faked_outputs(new, new) == []  # already there before: not the upgrade's doing
