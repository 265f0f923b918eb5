"""publish:github:pull-request clones the target repository within ENVFORGE_CLONE_*: a target
of too many files, or too many bytes, is stopped while git runs, in one line, and no pull
request is opened. Provider stand-in and a real Git smart-HTTP server, as in
test_publish_hostile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.security.test_publish_hostile import _fail, _pr_template
from tests.integration.security.test_publish_hostile import github as github  # fixture
from tests.standins.git_provider import ProviderStandIn


def test_a_target_of_too_many_files_is_not_cloned(
        tmp_path: Path, github: ProviderStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVFORGE_CLONE_MAX_ENTRIES", "1000")
    github.make_repo("acme", "app", "main", {f"f/{i:04d}.txt": "x\n" for i in range(3000)})
    message = _fail(_pr_template(tmp_path, {"new.txt": "new\n"}))
    assert ("git clone of acme/app stopped: its tree holds more than 1,000 files "
            "(ENVFORGE_CLONE_MAX_ENTRIES") in message
    assert [c for c in github.calls if c[1].endswith("/pulls")] == []


def test_a_target_of_too_many_bytes_is_stopped_during_the_transfer(
        tmp_path: Path, github: ProviderStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVFORGE_CLONE_MAX_BYTES", "1000000")
    blob = os.urandom(4 * 1024 * 1024).hex()  # 8 MB of text git cannot squeeze below 1 MB
    github.make_repo("acme", "app", "main", {"big.txt": blob})
    message = _fail(_pr_template(tmp_path, {"new.txt": "new\n"}))
    assert "git clone of acme/app stopped: the transfer passed 1,000,000 bytes" in message
    assert "ENVFORGE_CLONE_MAX_BYTES" in message
    assert [c for c in github.calls if c[1].endswith("/pulls")] == []
