"""Upgrade without Git: which environments are chosen, template versions, newly required
parameters, the per-environment diff, and which image steps are built again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from envforge.environments.upgrade import choose_environments, unified_diff
from envforge.environments.upgrade_rebuild import Rebuild, RebuiltStep, undo_rebuilds
from envforge.environments.upgrade_render import missing_required
from envforge.errors import EnvforgeError
from envforge.gitops.record import TemplateVersion
from envforge.gitops.versions import describe_version, template_digest, template_version
from envforge.images.actions import ImageBuild, ImageBuildInput, ImageBuildOutput
from envforge.run.runner import PreparedStep
from envforge.templating.loader import load_template
from envforge.templating.model import TemplateStep
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
    from envforge.environments.upgrade import faked_outputs

    old = {"m/deploy.yaml": "image: reg/app@sha256:abc\n"}
    new = {"m/deploy.yaml": "image: dry-run:image:build.image\n",
           "m/job.yaml": "x: <db:clone output url (dry run)>\n"}
    assert faked_outputs(old, new) == ["db:clone", "image:build"]
    assert faked_outputs(new, new) == []  # already there before: not the upgrade's doing


DEPLOYMENT_OLD = """\
spec:
  containers:
    - name: app
      image: 127.0.0.1:5055/shop@sha256:abc
      envFrom:
        - configMapRef: {name: pr-1-config}
        - secretRef: {name: pr-1-secrets}
"""


def test_recorded_outputs_are_read_back_from_the_line_in_their_place() -> None:
    from envforge.environments.upgrade_outputs import carry_forward

    prefix = "environments/pr-1/manifests/"
    old = {prefix + "deployment.yaml": DEPLOYMENT_OLD,
           prefix + "configmap.yaml": "kind: ConfigMap\ndata: {DB_NAME: envforge_pr_1}\n"}
    new = {prefix + "deployment.yaml": DEPLOYMENT_OLD.replace(
        "127.0.0.1:5055/shop@sha256:abc", "dry-run:image:build.image").replace(
        "name: app\n", "name: app\n      imagePullPolicy: IfNotPresent\n")}
    carried = carry_forward(old, new, writers_skipped=True, under=prefix)
    assert carried.values == {"dry-run:image:build.image": "127.0.0.1:5055/shop@sha256:abc"}
    deployment = carried.files[prefix + "deployment.yaml"]
    assert "image: 127.0.0.1:5055/shop@sha256:abc\n" in deployment
    assert "imagePullPolicy: IfNotPresent" in deployment  # the template's change is kept
    assert "dry-run" not in deployment and carried.unresolved == []
    # the ConfigMap a skipped vault:secrets step wrote is kept as it is
    assert carried.kept == [prefix + "configmap.yaml"]
    assert carried.files[prefix + "configmap.yaml"] == old[prefix + "configmap.yaml"]
    # without a skipped step that writes files, a file the template dropped stays dropped
    assert prefix + "configmap.yaml" not in carry_forward(old, new, under=prefix).files


def test_an_output_with_no_value_or_two_values_in_place_is_unresolved() -> None:
    from envforge.environments.upgrade_outputs import carry_forward

    old = {"m/a.yaml": "image: reg/app@sha256:1\nsidecar: reg/app@sha256:2\n"}
    # a new line where there was none: nothing to read back
    added = {"m/a.yaml": "image: reg/app@sha256:1\nsidecar: reg/app@sha256:2\n"
                         "init: dry-run:image:build.image\n"}
    assert carry_forward(old, added).unresolved == ["image:build"]
    # the same output in two places that held different values: ambiguous
    both = {"m/a.yaml": "image: dry-run:image:build.image\nsidecar: dry-run:image:build.image\n"}
    result = carry_forward(old, both)
    assert result.unresolved == ["image:build"] and "dry-run:image:build.image" in \
        result.files["m/a.yaml"]
    # a placeholder of the runner's other form, read back the same way
    unknown = {"m/a.yaml": "image: <acme:build output image (dry run)>\n"
                           "sidecar: reg/app@sha256:2\n"}
    assert carry_forward(old, unknown).values == {
        "<acme:build output image (dry run)>": "reg/app@sha256:1"}


def test_changed_inputs_names_fields_not_values() -> None:
    from envforge.environments.upgrade_outputs import changed_inputs

    assert changed_inputs({"ref": "main", "app": "shop"}, {"ref": "v2", "app": "shop",
                                                            "stack": "python"}) == [
        "ref", "stack"]
    assert changed_inputs({"ref": "main"}, {"ref": "main"}) == []


def _image_step() -> PreparedStep:
    params = ImageBuildInput(repoUrl="file:///srv/app.git", ref="feature")
    return PreparedStep(TemplateStep(id="image", action="image:build"), ImageBuild(), params,
                        fake=True)


def test_an_image_step_runs_again_only_when_its_inputs_changed_and_a_dry_run_builds_none(
        ) -> None:
    prepared = _image_step()
    seen: list[str] = []

    class Run:  # the render-only run: what it would do with the step itself
        def execute(self, step: PreparedStep) -> str:
            seen.append(step.step.id)
            return "faked"

    recorded = {"image": ("image:build", prepared.params.model_dump(mode="json"))}
    same = Rebuild(recorded, build=False)
    assert same.execute(Run(), prepared) == "faked"
    assert same.steps == [] and seen == ["image"]

    before = {**recorded["image"][1], "ref": "main"}
    dry = Rebuild({"image": ("image:build", before)}, build=False)
    output = dry.execute(Run(), prepared)
    assert seen == ["image"]  # not handed to the render-only run: its outputs say so
    assert output.image == "(built again by the upgrade, step image)"
    assert [s.describe() for s in dry.steps] == ["step 'image' (image:build: ref changed)"]
    assert dry.steps[0].built is None


def test_rebuilt_images_are_rolled_back_once_newest_first_and_problems_named() -> None:
    undone: list[str] = []

    def undo(name: str, fail: bool = False) -> Callable[[], None]:
        def run() -> None:
            undone.append(name)
            if fail:
                raise RuntimeError("registry gone")
        return run

    built = ImageBuildOutput(image="r/a@sha256:1", imageTag="r/a:1", digest="sha256:1",
                             commit="c", cached=False, dockerfile="Dockerfile")
    steps = [RebuiltStep("a", "image:build", ["ref"], built, undo("a")),
             RebuiltStep("b", "image:build", ["ref"], built, undo("b", fail=True)),
             RebuiltStep("c", "image:build", ["ref"])]  # a dry run's: nothing to undo
    problems = undo_rebuilds(steps)
    assert undone == ["b", "a"]
    assert problems == ["step 'b': RuntimeError: registry gone"]
    assert undo_rebuilds(steps) == [] and undone == ["b", "a"]  # each at most once
