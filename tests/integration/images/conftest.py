"""Real services for image builds: a docker-registry on a free 127.0.0.1 port (and a second one
with htpasswd authentication), buildah storage for the session, a busybox base image built
locally FROM scratch (there is no Docker Hub here), and application repositories made with git.
Everything is started by scripts/services/registry.sh and stopped by the pid it started."""

from __future__ import annotations

import shutil
import socket
import subprocess
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from envforge.core.config import PROJECT_ROOT
from envforge.images.builders import BuildahBuilder
from envforge.images.registry_client import RegistryAccess, RegistryClient
from tests.helpers import git

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # bcrypt for htpasswd via the system's libxcrypt; no extra dependency

REGISTRY_SCRIPT = PROJECT_ROOT / "scripts" / "services" / "registry.sh"
BUSYBOX = Path("/bin/busybox")
USER, PASSWORD = "builder", "s3cret-registry-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Registry:
    access: RegistryAccess
    directory: Path

    def tags(self, repository: str) -> list[str]:
        with RegistryClient(self.access) as client:
            return client.tags(repository)

    def digest(self, repository: str, tag: str) -> str | None:
        with RegistryClient(self.access) as client:
            return client.manifest_digest(repository, tag)


def _start_registry(directory: Path, htpasswd: Path | None = None) -> Registry:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (run scripts/bootstrap.sh)")
    args = ["bash", str(REGISTRY_SCRIPT), "start", str(directory), str(free_port())]
    if htpasswd is not None:
        args.append(str(htpasswd))
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()
    port = int(out[0])
    if htpasswd is None:
        return Registry(RegistryAccess(f"127.0.0.1:{port}", tls_verify=False), directory)
    return Registry(RegistryAccess(f"127.0.0.1:{port}", username=USER,
                                   password=SecretStr(PASSWORD), tls_verify=False), directory)


def _stop_registry(directory: Path) -> None:
    subprocess.run(["bash", str(REGISTRY_SCRIPT), "stop", str(directory)], check=False)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An open registry (no authentication) on 127.0.0.1, plain HTTP."""
    directory = tmp_path_factory.mktemp("registry")
    started = _start_registry(directory)
    try:
        yield started
    finally:
        _stop_registry(directory)


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry that demands a login (htpasswd, bcrypt)."""
    directory = tmp_path_factory.mktemp("auth-registry")
    htpasswd = directory / "htpasswd"
    # cost 4: the registry checks the hash on every request, keep it cheap for tests
    salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)
    htpasswd.write_text(f"{USER}:{crypt.crypt(PASSWORD, salt)}\n")
    started = _start_registry(directory, htpasswd)
    try:
        yield started
    finally:
        _stop_registry(directory)


@pytest.fixture(scope="session")
def buildah_storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed (run scripts/bootstrap.sh)")
    return tmp_path_factory.mktemp("buildah")


@pytest.fixture(scope="session")
def builder(buildah_storage: Path) -> BuildahBuilder:
    return BuildahBuilder(storage_root=buildah_storage / "root",
                          run_root=buildah_storage / "run")


@pytest.fixture(scope="session")
def base_image(registry: Registry, builder: BuildahBuilder,
               tmp_path_factory: pytest.TempPathFactory) -> str:
    """busybox FROM scratch (Debian's busybox-static), pushed to the test registry."""
    if not BUSYBOX.exists():
        pytest.skip("/bin/busybox missing: install busybox-static (scripts/bootstrap.sh)")
    context = tmp_path_factory.mktemp("base-image")
    shutil.copy2(BUSYBOX, context / "busybox")
    (context / "Containerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n')
    image = f"{registry.access.host}/base/busybox:1"
    options = builder.global_options()
    subprocess.run([*options, "bud", "--isolation", "chroot", "-t", image,
                    "-f", str(context / "Containerfile"), str(context)],
                   check=True, capture_output=True)
    subprocess.run([*options, "push", "--tls-verify=false", image, f"docker://{image}"],
                   check=True, capture_output=True)
    return image


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """A bare "remote" repository whose main branch holds ``files``; returns its path."""
    def make(files: dict[str, str], name: str = "app") -> Path:
        work = tmp_path / f"{name}-work"
        bare = tmp_path / f"{name}.git"
        work.mkdir()
        git("init", "--quiet", "--initial-branch=main", str(work))
        for rel, content in files.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(content)
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", "initial", cwd=work)
        git("clone", "--quiet", "--bare", str(work), str(bare))
        git("remote", "add", "origin", str(bare), cwd=work)
        return bare
    return make


def commit_to(bare: Path, files: dict[str, str], ref: str, message: str = "change") -> str:
    """Commit ``files`` on top of main in a scratch clone and push it to ``ref`` of ``bare``."""
    work = bare.parent / f"{bare.stem}-scratch-{abs(hash((ref, message))) % 10**8}"
    if not work.exists():
        git("clone", "--quiet", str(bare), str(work))
    git("checkout", "--quiet", "--detach", "origin/main", cwd=work)
    for rel, content in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(content)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", message, cwd=work)
    git("push", "--quiet", "origin", f"HEAD:{ref}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)
