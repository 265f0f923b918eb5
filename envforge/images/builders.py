"""Building and pushing an image, behind one interface.

:class:`ImageBuilder` is what the ``image:build`` action calls. :class:`BuildahBuilder` runs
buildah on the worker itself (daemonless; ``--storage-driver vfs --isolation chroot`` works
without privileges or a kernel overlay), streams its output line by line into the logger, and
on failure names the Dockerfile step that failed with its last lines. The Kubernetes variant,
which runs Kaniko as a Job, lives in :mod:`envforge.images.kaniko`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from envforge.errors import (
    ImageBuildFailedError,
    ImagePushError,
    RegistryAuthError,
    RegistryUnreachableError,
)
from envforge.images.registry_client import RegistryAccess

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

_AUTH_HINTS = ("unauthorized", "authentication required", "denied", "403 forbidden",
               "invalid username/password")
_UNREACHABLE_HINTS = ("connection refused", "no such host", "i/o timeout", "timeout",
                      "http response to https client", "x509", "tls:", "eof")


@dataclass(frozen=True)
class BuildRequest:
    """What to build and where to push it. ``image`` is ``host[:port]/repository:tag``."""

    image: str
    registry: RegistryAccess
    dockerfile_text: str
    context_dir: Path | None = None  # a checkout, for builders that build on this machine
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    # Where the source is, for builders that fetch it themselves (Kaniko):
    source_url: str | None = None
    commit: str | None = None
    ref_name: str | None = None
    context_path: str = "."


@dataclass(frozen=True)
class BuildResult:
    digest: str
    build_seconds: float
    push_seconds: float


class ImageBuilder(ABC):
    """Builds ``request`` and pushes it to its registry; returns the pushed digest."""

    name: str

    @abstractmethod
    def build_and_push(self, request: BuildRequest, logger: Logger) -> BuildResult: ...


@contextmanager
def registry_files(access: RegistryAccess) -> Iterator[list[str]]:
    """buildah options for ``access``: an auth file and a CA directory, in a private temporary
    directory (mode 0700) that is removed afterwards; credentials never go on a command line."""
    directory = Path(tempfile.mkdtemp(prefix="envforge-registry-"))
    try:
        options = [f"--tls-verify={'true' if access.tls_verify else 'false'}"]
        basic = access.basic_auth()
        if basic is not None:
            auth_file = directory / "auth.json"
            fd = os.open(auth_file, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"auths": {access.host: {"auth": basic}}}, f)
            options.append(f"--authfile={auth_file}")
        if access.ca_cert:
            certs = directory / "certs"
            certs.mkdir()
            (certs / "ca.crt").write_text(access.ca_cert)
            options.append(f"--cert-dir={certs}")
        yield options
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class _StreamedRun:
    returncode: int
    last_step: str | None
    tail: list[str]


class BuildahBuilder(ImageBuilder):
    """Build with ``buildah bud`` and push with ``buildah push`` on this machine."""

    name = "buildah"

    def __init__(self, storage_root: Path | None = None, run_root: Path | None = None,
                 storage_driver: str = "vfs", isolation: str = "chroot",
                 executable: str = "buildah", timeout_seconds: float = 1800.0,
                 tail_lines: int = 15, remove_local_image: bool = True) -> None:
        self.storage_root = storage_root
        self.run_root = run_root
        self.storage_driver = storage_driver
        self.isolation = isolation
        self.executable = executable
        self.timeout_seconds = timeout_seconds
        self.tail_lines = tail_lines
        self.remove_local_image = remove_local_image

    def global_options(self) -> list[str]:
        options = [self.executable, "--storage-driver", self.storage_driver]
        if self.storage_root is not None:
            options += ["--root", str(self.storage_root)]
        if self.run_root is not None:
            options += ["--runroot", str(self.run_root)]
        return options

    def build_and_push(self, request: BuildRequest, logger: Logger) -> BuildResult:
        if request.context_dir is None:
            raise ValueError("BuildahBuilder needs request.context_dir (a checkout)")
        with tempfile.TemporaryDirectory(prefix="envforge-build-") as scratch, \
                registry_files(request.registry) as registry_options:
            dockerfile = Path(scratch) / "Dockerfile"
            dockerfile.write_text(request.dockerfile_text)
            digest_file = Path(scratch) / "digest"
            build = [*self.global_options(), "bud", "--isolation", self.isolation,
                     *registry_options, "-f", str(dockerfile), "-t", request.image]
            for key, value in sorted(request.build_args.items()):
                build += ["--build-arg", f"{key}={value}"]
            for key, value in sorted(request.labels.items()):
                build += ["--label", f"{key}={value}"]
            build.append(str(request.context_dir))
            started = time.perf_counter()
            logger.info("building %s with buildah", request.image)
            run = self._stream(build, logger)
            if run.returncode != 0:  # a failed bud tags nothing, so nothing to clean up
                raise ImageBuildFailedError(request.image, run.last_step, run.tail)
            built = time.perf_counter()
            push = [*self.global_options(), "push", *registry_options,
                    "--digestfile", str(digest_file), request.image,
                    f"docker://{request.image}"]
            logger.info("pushing %s", request.image)
            try:
                run = self._stream(push, logger)
                if run.returncode != 0:
                    raise _push_error(request, run.tail)
                digest = digest_file.read_text().strip()
            finally:
                if self.remove_local_image:  # the registry has it; keep local storage small
                    subprocess.run([*self.global_options(), "rmi", "--force", request.image],
                                   capture_output=True, check=False, timeout=120)
        pushed = time.perf_counter()
        logger.info("pushed %s@%s", request.image, digest)
        return BuildResult(digest=digest, build_seconds=built - started,
                           push_seconds=pushed - built)

    def _stream(self, argv: list[str], logger: Logger) -> _StreamedRun:
        """Run ``argv``, logging each output line as it comes; bounded by the timeout."""
        tail: deque[str] = deque(maxlen=200)  # output since the last STEP line
        last_step: str | None = None
        timed_out = threading.Event()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1, errors="replace")

        def kill() -> None:
            timed_out.set()
            process.kill()

        timer = threading.Timer(self.timeout_seconds, kill)
        timer.start()
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.rstrip("\n")
                logger.info("| %s", line)
                if line.startswith("STEP ") and ":" in line:
                    last_step = line
                    tail.clear()
                else:
                    tail.append(line)
            returncode = process.wait()
        finally:
            timer.cancel()
        lines = list(tail)
        if timed_out.is_set():
            lines.append(f"(killed after {self.timeout_seconds:.0f} s)")
        return _StreamedRun(returncode, last_step, lines[-self.tail_lines:])


def _push_error(request: BuildRequest, tail: list[str]) -> Exception:
    text = "\n".join(tail).lower()
    host = request.registry.host
    detail = tail[-1] if tail else "no output"
    if any(hint in text for hint in _AUTH_HINTS):
        return RegistryAuthError(
            f"registry {host} refused the push of {request.image}: {detail}; check the "
            "ContainerRegistry block's username and password")
    if any(hint in text for hint in _UNREACHABLE_HINTS):
        return RegistryUnreachableError(
            f"registry {host} could not be reached to push {request.image}: {detail}; check "
            "its address, that it is running, and its TLS settings")
    return ImagePushError(f"pushing {request.image} to {host} failed: {detail}")
