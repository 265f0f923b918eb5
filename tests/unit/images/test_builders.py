"""BuildahBuilder's streaming, step naming and error mapping, with a stand-in buildah script
(the real one is exercised in tests/integration/images)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from envforge.errors import (
    ImageBuildFailedError,
    ImagePushError,
    RegistryAuthError,
    RegistryUnreachableError,
)
from envforge.images.builders import BuildahBuilder, BuildRequest, registry_files
from envforge.images.registry_client import RegistryAccess

FAKE_BUILDAH = r"""#!/bin/bash
# stand-in for buildah: records its arguments, behaves as $FAKE_MODE says
echo "$*" >> "$FAKE_LOG"
while [ "$1" = "--storage-driver" ] || [ "$1" = "--root" ] || [ "$1" = "--runroot" ]; do
    shift 2
done
case "$1" in
bud)
    for a in "$@"; do case "$a" in --authfile=*) cp "${a#--authfile=}" "$FAKE_LOG.auth";; esac; done
    echo "STEP 1/3: FROM base"
    echo "STEP 2/3: RUN make"
    for i in $(seq 1 30); do echo "compiling unit $i"; done
    if [ "$FAKE_MODE" = "fail" ]; then
        echo "make: *** [all] Error 2"
        echo 'Error: building at STEP "RUN make": exit status 2'
        exit 1
    fi
    echo "STEP 3/3: CMD app"
    echo "Successfully tagged image";;
push)
    case "$FAKE_MODE" in
        auth) echo "Error: writing blob: initiating layer upload: unauthorized: authentication required"; exit 125;;
        down) echo "Error: pinging container registry 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused"; exit 125;;
        odd) echo "Error: manifest invalid"; exit 125;;
    esac
    while [ "$1" != "--digestfile" ]; do shift; done
    echo "sha256:feedbeef" > "$2";;
rmi) exit 0;;
esac
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BuildahBuilder:
    script = tmp_path / "buildah"
    script.write_text(FAKE_BUILDAH)
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_MODE", "ok")
    return BuildahBuilder(storage_root=tmp_path / "root", executable=str(script),
                          tail_lines=5)


def _request(tmp_path: Path, password: str | None = None) -> BuildRequest:
    access = RegistryAccess("127.0.0.1:5000", username="ci" if password else None,
                            password=SecretStr(password) if password else None,
                            tls_verify=False)
    return BuildRequest(image="127.0.0.1:5000/app:abc", registry=access,
                        dockerfile_text="FROM base\n", context_dir=tmp_path,
                        build_args={"MODE": "prod"})


def test_success_streams_lines_and_returns_the_digest(
    fake: BuildahBuilder, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        result = fake.build_and_push(_request(tmp_path, "topsecret"), logging.getLogger("t"))
    assert result.digest == "sha256:feedbeef"
    streamed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("| ")]
    assert "| compiling unit 17" in streamed and "| STEP 3/3: CMD app" in streamed
    calls = (tmp_path / "calls.log").read_text()
    assert "topsecret" not in calls and "--tls-verify=false" in calls
    assert "--build-arg MODE=prod" in calls and "--root " + str(tmp_path / "root") in calls
    assert json.loads((tmp_path / "calls.log.auth").read_text())["auths"]["127.0.0.1:5000"]
    assert "rmi" in calls  # the local copy is dropped after the push
    assert "topsecret" not in caplog.text


def test_failure_names_the_step_and_its_last_lines(
    fake: BuildahBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(ImageBuildFailedError) as caught:
        fake.build_and_push(_request(tmp_path), logging.getLogger("t"))
    error = caught.value
    assert error.step == "STEP 2/3: RUN make"
    assert error.last_lines[-2:] == ["make: *** [all] Error 2",
                                     'Error: building at STEP "RUN make": exit status 2']
    assert len(error.last_lines) == 5 and "compiling unit 30" in error.last_lines
    assert "at STEP 2/3: RUN make" in str(error)
    assert " push " not in (tmp_path / "calls.log").read_text()  # nothing pushed


@pytest.mark.parametrize(("mode", "error"), [("auth", RegistryAuthError),
                                             ("down", RegistryUnreachableError),
                                             ("odd", ImagePushError)])
def test_push_failures_are_classified(fake: BuildahBuilder, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, mode: str,
                                      error: type[Exception]) -> None:
    monkeypatch.setenv("FAKE_MODE", mode)
    with pytest.raises(error, match=r"127\.0\.0\.1:5000"):
        fake.build_and_push(_request(tmp_path, "pw"), logging.getLogger("t"))


def test_timeout_kills_the_build(tmp_path: Path) -> None:
    script = tmp_path / "slow"
    script.write_text("#!/bin/sh\necho 'STEP 1/1: RUN sleep'\nexec sleep 30\n")
    script.chmod(0o755)
    builder = BuildahBuilder(executable=str(script), timeout_seconds=0.5)
    with pytest.raises(ImageBuildFailedError, match=r"killed after 0 s|killed after 1 s"):
        builder.build_and_push(_request(tmp_path), logging.getLogger("t"))


def test_registry_files_are_private_and_removed() -> None:
    access = RegistryAccess("r.example", username="u", password=SecretStr("p"),
                            ca_cert="-----BEGIN CERTIFICATE-----\nx\n")
    with registry_files(access) as options:
        auth = Path(next(o for o in options if o.startswith("--authfile=")).split("=", 1)[1])
        certs = Path(next(o for o in options if o.startswith("--cert-dir=")).split("=", 1)[1])
        assert auth.stat().st_mode & 0o077 == 0 and (certs / "ca.crt").exists()
        assert "--tls-verify=true" in options
    assert not auth.exists() and not certs.exists()
