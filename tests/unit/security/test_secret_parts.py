"""A secret a template cuts (``truncate``, ``replace`` of a few characters, a quoted fragment
in a message) is still found before Git and masked in logs, through its parts; the
non-secret stretches of a structured secret (a connection string's scheme, user, host) and
plain words never count. Hostile corpus: parts of secret values in files, fields and logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from envforge.core.secret_guard import SecretGuard
from envforge.core.secret_parts import PART_LENGTH, mask_parts, secret_parts
from envforge.errors import SecretInGitError, StepFailedError
from envforge.run.run_secrets import files_holding_secrets, holds_secret
from envforge.secrets.redaction import MASK, SecretRedactor
from tests.unit.backstage.test_backstage_format import make, run

TOKEN = "ghx9Kq2ZtV7mWb4LcR8nYp3Hs6Df"
DSN = "postgresql://app:Zq8vN3kLp2Xw9Jt@db.internal:5432/app"


@pytest.mark.parametrize("cut", [
    "secrets.API_TOKEN | truncate(15)",
    "secrets.API_TOKEN | truncate(20, true, '')",
    "secrets.API_TOKEN | replace('Zt', '--')",
    "secrets.API_TOKEN | reverse | truncate(16)",
    "secrets.API_TOKEN | lower | truncate(14)",
])
def test_a_cut_secret_never_reaches_git(tmp_path: Path, cut: str) -> None:
    directory = make(tmp_path, f"""\
      steps:
        - id: fetch
          action: fetch:template
          input: {{url: ./skeleton, values: {{token: "${{{{ {cut} }}}}"}}}}
        - id: publish
          action: publish:github
          input: {{repoUrl: "github.com?owner=o&repo=r"}}
    """, files={"skeleton/config": "key: ${{ values.token }}\n"})
    with pytest.raises(StepFailedError, match=r"refusing to publish: 1 workspace file\(s\) "
                       r"hold a secret's value: config \(secrets\.API_TOKEN\)") as caught:
        run(directory, dry_run=True, secrets={"API_TOKEN": TOKEN})
    assert TOKEN[:PART_LENGTH] not in str(caught.value)


def test_a_cut_secret_in_a_git_field_is_refused(tmp_path: Path) -> None:
    directory = make(tmp_path, """\
      steps:
        - id: write
          action: catalog:write
          input: {entity: {metadata: {description: "id ${{ secrets.API_TOKEN | truncate(13, true, '') }}"}}}
    """)
    with pytest.raises(StepFailedError, match=r"input\.entity\.metadata\.description "
                       r"\(secrets\.API_TOKEN\): holds a secret's value"):
        run(directory, secrets={"API_TOKEN": TOKEN})


def test_only_the_random_stretches_of_a_structured_secret_count() -> None:
    # the same server and user with another password: not this secret
    assert not holds_secret("url: postgresql://app:other@db.internal:5432/app", DSN)
    assert not holds_secret("postgresql production database internal", DSN)
    # its password, cut or whole, is
    assert holds_secret("password: Zq8vN3kLp2Xw", DSN)
    assert holds_secret("pw=" + "Zq8vN3kLp2Xw9Jt"[::-1], DSN)
    # eleven characters in a row are not a part; twelve are
    assert not holds_secret(f"_{TOKEN[3:3 + PART_LENGTH - 1]}_", TOKEN)
    assert holds_secret(f"_{TOKEN[3:3 + PART_LENGTH]}_", TOKEN)
    # words and one-class runs never make parts
    assert secret_parts("correct-horse-battery-staple-extra") == frozenset()
    assert secret_parts("aaaaaaaaaaaaaaaaaaaaaaaa1") == frozenset()


def test_a_long_key_is_sampled_so_any_part_twice_the_length_is_found() -> None:
    key = "".join(TOKEN[(i * 7) % len(TOKEN)] + str(i % 10) for i in range(400))
    assert len(key) > 256
    for start in (0, 101, 555, len(key) - 2 * PART_LENGTH):
        assert holds_secret("k: " + key[start:start + 2 * PART_LENGTH - 1], key)


def test_parts_are_masked_in_logs_as_one_stretch() -> None:
    redactor = SecretRedactor()
    redactor.register(TOKEN)
    record = logging.LogRecord("envforge.step.x", logging.INFO, __file__, 1,
                               "first %s then %s", (TOKEN[2:19], TOKEN[:14].upper()), None)
    redactor.filter(record)
    message = record.getMessage()
    assert message == f"first {MASK} then {MASK}"
    assert mask_parts("nothing here at all, no secret", secret_parts(TOKEN), MASK) == \
        "nothing here at all, no secret"


def test_the_gitops_guard_refuses_a_staged_part(tmp_path: Path) -> None:
    redactor = SecretRedactor()
    redactor.register(DSN)
    (tmp_path / "ok.yaml").write_text("DATABASE_HOST: db.internal:5432\n")
    (tmp_path / "bad.yaml").write_text("DATABASE_PASSWORD: Zq8vN3kLp2Xw9\n")
    guard = SecretGuard(scrub=redactor.scrub)
    guard(tmp_path, ["ok.yaml"])  # the host alone is not the secret
    with pytest.raises(SecretInGitError, match=r"bad\.yaml \(the value of a secret"):
        guard(tmp_path, ["ok.yaml", "bad.yaml"])


def test_workspace_scan_names_the_file_holding_a_part(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("nothing")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text(f"token={TOKEN[5:22]}...")
    assert files_holding_secrets(tmp_path, {"T": TOKEN}) == [("sub/b.txt", "T")]
