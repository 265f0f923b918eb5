"""Secret values for ${{ secrets.NAME }} (envforge.run.run_secrets): rendered where the template
uses them, never in a log record, an error, the run's result or a file headed for Git."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from envforge.errors import ConfigurationError, StepFailedError
from envforge.run.run_secrets import (
    RunSecrets,
    SecretRef,
    default_block_name,
    parse_block_specs,
    parse_secret_assignments,
)
from envforge.secrets.redaction import MASK
from tests.unit.backstage.test_backstage_format import make, run

VALUE = "s3cr3t-Value-7f1c"


def test_assignments_read_values_and_files(tmp_path: Path) -> None:
    file = tmp_path / "token.txt"
    file.write_text("from-a-file\n")
    assert parse_secret_assignments(["A=one=two", f"B=@{file}"]) == {
        "A": "one=two", "B": "from-a-file"}


@pytest.mark.parametrize("item, message", [
    (f"no-equals-{VALUE}", r"--secret NAME=\.\.\.: expected NAME=VALUE"),
    (f"A={VALUE}", r"--secret A is given twice"),
    ("A=", r"--secret A: the value is empty"),
    ("A=@/nonexistent/file", r"--secret A=@/nonexistent/file: cannot read the file"),
    (f"bad name={VALUE}", r"--secret NAME=\.\.\.: expected"),
])
def test_bad_assignments_are_one_line_errors_without_the_value(item: str, message: str) -> None:
    items = [f"A={VALUE}", item] if "twice" in message else [item]
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_secret_assignments(items)
    assert VALUE not in str(caught.value) and "\n" not in str(caught.value)


def test_block_specs_name_blocks() -> None:
    assert parse_block_specs(["GITHUB_TOKEN", "db=prod-db-password"]) == {
        "GITHUB_TOKEN": "github-token", "db": "prod-db-password"}
    assert default_block_name("My_Token") == "my-token"
    with pytest.raises(ConfigurationError, match="names blocks, never values"):
        parse_block_specs(["X=Not A Block Name!"])


def test_secrets_in_expressions_give_values_names_or_how_to_pass_them() -> None:
    secrets = RunSecrets({"A": VALUE}, ["B"])
    assert secrets["A"] == VALUE and secrets["B"] == SecretRef("B")
    assert VALUE not in repr(secrets)
    with pytest.raises(Exception, match=r"secrets\.C was not given to this run \(given: A, B\); "
                       r"pass it with 'envforge run \.\.\. --secret C=VALUE'"):
        secrets["C"]


SKELETON_AND_INPUT = """\
  steps:
    - id: fetch
      action: fetch:template
      input:
        url: ./skeleton
        values: {token: "${{ secrets.API_TOKEN }}"}
    - id: log
      action: debug:log
      input: {message: "token is ${{ secrets.API_TOKEN }}"}
  output:
    text:
      - title: token
        content: "${{ secrets.API_TOKEN }}"
"""


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def test_a_secret_renders_into_the_skeleton_and_an_input_and_nowhere_else(
        tmp_path: Path) -> None:
    directory = make(tmp_path, SKELETON_AND_INPUT,
                     files={"skeleton/.npmrc": "//registry/:_authToken=${{ values.token }}\n"})
    caplog = _Records()  # on the step's own logger: other tests may stop propagation
    step_logger = logging.getLogger("envforge.step.log")
    step_logger.addHandler(caplog)
    step_logger.setLevel(logging.INFO)
    try:
        run_, result = run(directory, secrets={"API_TOKEN": VALUE})
    finally:
        step_logger.removeHandler(caplog)
    assert (run_.workspace / ".npmrc").read_text() == f"//registry/:_authToken={VALUE}\n"
    assert [r.status for r in run_.reports] == ["completed", "completed"]
    assert "token is " + MASK in caplog.text and VALUE not in caplog.text
    assert result["output"]["text"][0]["content"] == MASK
    assert VALUE not in repr(run_)
    run_.close()
    assert not run_.secrets


def test_a_value_too_short_to_mask_is_refused(tmp_path: Path) -> None:
    directory = make(tmp_path, SKELETON_AND_INPUT, files={"skeleton/x": "${{ values.token }}"})
    with pytest.raises(ConfigurationError, match=r"secrets\.API_TOKEN: the value is shorter "
                       r"than 4 characters") as caught:
        run(directory, secrets={"API_TOKEN": "ab1"})
    assert "ab1" not in str(caught.value)


def test_a_secret_in_a_fetch_url_is_refused_before_it_leaves(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - id: fetch
          action: fetch:template
          input: {url: "./skeleton-${{ secrets.API_TOKEN }}"}
    """)
    # refused before the step runs: a secret in a fetch URL would leave the machine
    with pytest.raises(StepFailedError, match=r"input\.url \(secrets\.API_TOKEN\): holds a "
                       r"secret's value") as caught:
        run(directory, secrets={"API_TOKEN": VALUE})
    assert VALUE not in str(caught.value)


def test_a_value_never_goes_to_git(tmp_path: Path) -> None:
    into_skeleton = make(tmp_path, """\
      steps:
        - id: fetch
          action: fetch:template
          input: {url: ./skeleton, values: {token: "${{ secrets.API_TOKEN }}"}}
        - id: publish
          action: publish:github
          input: {repoUrl: "github.com?owner=o&repo=r"}
    """, name="skeleton", files={"skeleton/config": "${{ values.token }}\n"})
    # a dry run predicts the refusal: publish is faked, the workspace is still checked
    with pytest.raises(StepFailedError, match=r"refusing to publish: 1 workspace file\(s\) "
                       r"hold a secret's value: config \(secrets\.API_TOKEN\)") as caught:
        run(into_skeleton, dry_run=True, secrets={"API_TOKEN": VALUE})
    assert VALUE not in str(caught.value)
    into_field = make(tmp_path, """\
      steps:
        - id: write
          action: catalog:write
          input: {entity: {metadata: {name: "${{ secrets.API_TOKEN }}"}}}
    """, name="field")
    with pytest.raises(StepFailedError, match=r"input\.entity\.metadata\.name "
                       r"\(secrets\.API_TOKEN\): holds a secret's value"):
        run(into_field, secrets={"API_TOKEN": VALUE})
    token_only = make(tmp_path, """\
      steps:
        - id: publish
          action: publish:github
          input:
            repoUrl: "github.com?owner=o&repo=r"
            token: "${{ secrets.API_TOKEN }}"
            secrets: {DEPLOY_KEY: "${{ secrets.API_TOKEN }}"}  # the repository's, via its API
    """, name="token")
    run_, _ = run(token_only, dry_run=True, secrets={"API_TOKEN": VALUE})
    assert [r.status for r in run_.reports] == ["faked"]  # accepted: a token is not Git
    run_.close()
