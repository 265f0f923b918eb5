"""Bad input: a clear error naming what is wrong, and nothing pushed under the tag."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from envforge.cli import main
from envforge.errors import (
    ImageBuildFailedError,
    PathEscapeError,
    RefNotFoundError,
    RegistryAuthError,
    RegistryUnreachableError,
    SourceUnreachableError,
    UnknownStackError,
)
from envforge.images.build import ImageBuildSpec, build_image
from envforge.images.builders import BuildahBuilder, BuildRequest, BuildResult, ImageBuilder, Logger
from envforge.images.git_auth import GitAuth
from envforge.images.registry_client import RegistryAccess
from envforge.images.source import GitSourceCache
from tests.git_http import GitHttpServer
from tests.helpers import git
from tests.integration.images.conftest import PASSWORD, USER, Registry, free_port

log = logging.getLogger("test.images")


class MustNotBuild(ImageBuilder):
    """Fails the test if a build is attempted: these errors must come before any build."""

    name = "must-not-build"

    def build_and_push(self, request: BuildRequest, logger: Logger) -> BuildResult:
        raise AssertionError(f"a build was attempted for {request.image}")


def _build(spec: ImageBuildSpec, access: RegistryAccess, tmp_path: Path,
           builder: ImageBuilder | None = None):  # type: ignore[no-untyped-def]
    return build_image(spec, access, builder or MustNotBuild(),
                       GitSourceCache(tmp_path / "sources"), log)


def test_unreachable_repository(registry: Registry, tmp_path: Path) -> None:
    missing = (tmp_path / "no-such-repo.git").as_uri()
    with pytest.raises(SourceUnreachableError, match=r"cannot clone .*no-such-repo"):
        _build(ImageBuildSpec(repo_url=missing, ref="main", app="ghost"), registry.access,
               tmp_path)
    assert not list((tmp_path / "sources" / "mirrors").glob("*.git"))  # no half mirror
    assert registry.tags("ghost") == []


def test_ref_not_found_lists_what_exists(make_repo: Callable[..., Path], registry: Registry,
                                         tmp_path: Path) -> None:
    bare = make_repo({"index.html": "x\n"})
    for ref in ("feature/nope", "pull/99/head", "deadbeefcafe"):
        with pytest.raises(RefNotFoundError, match=r"no branch, tag.*branches: main"):
            _build(ImageBuildSpec(repo_url=bare.as_uri(), ref=ref, app="noref"),
                   registry.access, tmp_path)
    assert registry.tags("noref") == []


def test_unknown_stack_and_undetectable_stack(make_repo: Callable[..., Path],
                                              registry: Registry, tmp_path: Path) -> None:
    bare = make_repo({"main.go": "package main\n"})
    with pytest.raises(UnknownStackError, match=r"unknown stack 'cobol'.*java-maven, node"):
        _build(ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app="odd", stack="cobol"),
               registry.access, tmp_path)
    with pytest.raises(UnknownStackError, match=r"cannot be detected.*name the stack"):
        _build(ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app="odd"),
               registry.access, tmp_path)
    assert registry.tags("odd") == []


def test_context_symlink_leading_out_of_the_repository(
    make_repo: Callable[..., Path], registry: Registry, tmp_path: Path,
) -> None:
    bare = make_repo({"Dockerfile": "FROM scratch\nCOPY . /\n"})
    work = bare.parent / "app-work"
    (work / "web").symlink_to("/etc")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "sneaky context", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    with pytest.raises(PathEscapeError, match="'web' escapes the repository"):
        _build(ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app="sneaky",
                              dockerfile="Dockerfile", context="web"), registry.access, tmp_path)
    assert registry.tags("sneaky") == []


def test_registry_unreachable(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    bare = make_repo({"index.html": "x\n"})
    nowhere = RegistryAccess(f"127.0.0.1:{free_port()}", tls_verify=False)
    with pytest.raises(RegistryUnreachableError, match=r"registry 127\.0\.0\.1:\d+ did not"):
        _build(ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app="lost"), nowhere,
               tmp_path)


@pytest.mark.parametrize("password", [None, "wrong-password"])
def test_registry_rejects_credentials(make_repo: Callable[..., Path], auth_registry: Registry,
                                      tmp_path: Path, password: str | None) -> None:
    bare = make_repo({"index.html": "x\n"})
    bad = RegistryAccess(auth_registry.access.address, username=USER if password else None,
                         password=SecretStr(password) if password else None, tls_verify=False)
    with pytest.raises(RegistryAuthError) as caught:
        _build(ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app="locked"), bad, tmp_path)
    assert "wrong-password" not in str(caught.value) and PASSWORD not in str(caught.value)
    assert auth_registry.tags("locked") == []


@pytest.mark.buildah
@pytest.mark.slow
def test_failing_dockerfile_names_the_step_and_shows_its_last_lines(
    make_repo: Callable[..., Path], registry: Registry, builder: BuildahBuilder,
    base_image: str, tmp_path: Path,
) -> None:
    bare = make_repo({"Dockerfile": (
        f"FROM {base_image}\n"
        "RUN echo preparing\n"
        "RUN echo 'compiling module alpha' && echo 'error: alpha.c:3: boom' >&2 && exit 3\n"
        "RUN echo never\n")})
    with pytest.raises(ImageBuildFailedError) as caught:
        _build(ImageBuildSpec(repo_url=bare.as_uri(), ref="main", app="broken"),
               registry.access, tmp_path, builder)
    error = caught.value
    assert error.step is not None and error.step.startswith("STEP 3/")
    assert "RUN echo 'compiling" in error.step
    assert "error: alpha.c:3: boom" in error.last_lines
    assert "never" not in str(error) and "preparing" not in "\n".join(error.last_lines)
    assert registry.tags("broken") == []


def test_cli_reports_a_bad_ref_as_one_line(make_repo: Callable[..., Path], registry: Registry,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bare = make_repo({"index.html": "x\n"})
    code = main(["image", "build", str(bare), "--ref", "nope", "--registry",
                 registry.access.address, "--insecure"])
    err = capsys.readouterr().err
    assert code == 1 and "error: repository" in err and "'nope'" in err


def test_private_repository_over_http_with_git_credentials(
    make_repo: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    bare = make_repo({"index.html": "private\n"}, name="private")
    with GitHttpServer(bare.parent, "ci-bot", "tok-right-123", protect="all") as server:
        url = server.url(bare.name)
        cache = GitSourceCache(tmp_path / "sources")
        good = GitAuth(username="ci-bot", token=SecretStr("tok-right-123"))
        with caplog.at_level(logging.DEBUG):
            resolved = cache.resolve(url, "main", good)
            assert resolved.commit == git("--git-dir", str(bare), "rev-parse", "main")
            assert cache.resolve(url, "main", good).commit == resolved.commit  # fetch too
        assert "tok-right-123" not in caplog.text
        config = (resolved.mirror / "config").read_text()
        assert "tok-right-123" not in config and "ci-bot" not in config
        for auth in (None, GitAuth(username="ci-bot", token=SecretStr("tok-wrong-456"))):
            other = GitSourceCache(tmp_path / f"other-{auth is None}")
            with pytest.raises(SourceUnreachableError, match="cannot clone") as caught:
                other.resolve(url, "main", auth)
            assert "tok-wrong-456" not in str(caught.value)
