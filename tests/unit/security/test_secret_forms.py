"""A secret a template reshapes with its filters (upper, reverse, urlencode, list | join) is
still found before Git and still masked in logs; ``--secret NAME=@FILE`` never hangs on a
pipe. Hostile corpus: secret values in files, fields and logs after a template's filters."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from envforge.errors import ConfigurationError, StepFailedError
from envforge.run.run_secrets import holds_secret, parse_secret_assignments
from envforge.secrets.redaction import MASK
from tests.unit.backstage.test_backstage_format import make, run

VALUE = "Tok-9f2c/Secret+77"


@pytest.mark.parametrize("shaped", [
    "secrets.API_TOKEN | upper", "secrets.API_TOKEN | lower", "secrets.API_TOKEN | reverse",
    "secrets.API_TOKEN | urlencode", "secrets.API_TOKEN | list | join('-')",
    "secrets.API_TOKEN | title",
])
def test_a_reshaped_secret_never_reaches_git(tmp_path: Path, shaped: str) -> None:
    directory = make(tmp_path, f"""\
      steps:
        - id: fetch
          action: fetch:template
          input: {{url: ./skeleton, values: {{token: "${{{{ {shaped} }}}}"}}}}
        - id: publish
          action: publish:github
          input: {{repoUrl: "github.com?owner=o&repo=r"}}
    """, files={"skeleton/config": "${{ values.token }}\n"})
    with pytest.raises(StepFailedError, match=r"refusing to publish: 1 workspace file\(s\) "
                       r"hold a secret's value: config \(secrets\.API_TOKEN\)") as caught:
        run(directory, dry_run=True, secrets={"API_TOKEN": VALUE})
    assert VALUE not in str(caught.value)


def test_a_reversed_secret_in_a_git_field_is_refused(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - id: write
          action: catalog:write
          input: {entity: {metadata: {description: "${{ secrets.API_TOKEN | reverse }}"}}}
    """)
    with pytest.raises(StepFailedError, match=r"input\.entity\.metadata\.description "
                       r"\(secrets\.API_TOKEN\): holds a secret's value"):
        run(directory, secrets={"API_TOKEN": VALUE})


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_a_reshaped_secret_is_masked_in_logs(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - id: shout
          action: debug:log
          input:
            message: "a ${{ secrets.API_TOKEN | upper }} b ${{ secrets.API_TOKEN | reverse }}"
    """)
    records = _Records()
    step_logger = logging.getLogger("envforge.step.shout")
    step_logger.addHandler(records)
    step_logger.setLevel(logging.INFO)
    try:
        run(directory, secrets={"API_TOKEN": VALUE})
    finally:
        step_logger.removeHandler(records)
    text = "\n".join(records.lines)
    assert f"a {MASK} b {MASK}" in text
    assert VALUE.upper() not in text and VALUE[::-1] not in text


def test_unrelated_text_is_not_taken_for_a_secret() -> None:
    assert not holds_secret("Tok-9f2c/Secret+7", VALUE)  # a cut value is not the value
    assert not holds_secret("token: xyz", VALUE)
    assert holds_secret(f"x {VALUE.swapcase()} y", VALUE)


def test_a_secret_file_that_is_a_pipe_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "value"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    outcome: list[BaseException | dict[str, str]] = []

    def parse() -> None:
        try:
            outcome.append(parse_secret_assignments([f"API_TOKEN=@{fifo}"]))
        except BaseException as e:
            outcome.append(e)

    worker = threading.Thread(target=parse, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert outcome, "reading a pipe as a secret file hung"
    [error] = outcome
    assert isinstance(error, ConfigurationError) and "not a regular file" in str(error)
    assert "\n" not in str(error)
    with pytest.raises(ConfigurationError, match="not a regular file"):
        parse_secret_assignments([f"API_TOKEN=@{tmp_path}"])


@pytest.mark.parametrize("url", [
    "https://allowed.example/x?k=${{ secrets.API_TOKEN }}",
    "https://allowed.example/${{ secrets.API_TOKEN | reverse }}/archive.tar.gz",
])
def test_a_secret_never_leaves_in_a_fetch_url(tmp_path: Path, url: str) -> None:
    """A fetch sends its URL to the host it names: a secret there is refused before any
    request (the egress allowlist decides where, this decides what)."""
    directory = make(tmp_path, f"""\
      steps:
        - id: fetch
          action: fetch:plain
          input: {{url: "{url}"}}
    """)
    with pytest.raises(StepFailedError, match=r"input\.url \(secrets\.API_TOKEN\): holds a "
                       r"secret's value") as caught:
        run(directory, secrets={"API_TOKEN": VALUE})
    assert VALUE not in str(caught.value)
