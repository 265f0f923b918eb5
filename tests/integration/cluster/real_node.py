"""What the real-node tests stand on: a cluster whose node is a real kubelet + containerd
(scripts/services/node.sh), two local registries (one open, one with htpasswd) and a busybox
image pushed to both, and small helpers that poll pods through kubectl.

The session's cluster is used when its node is already real (``ENVFORGE_NODE=real``);
otherwise one is started for these tests beside it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import started
from tests.kube import ControlPlane, start_control_plane, stop_control_plane

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # bcrypt for htpasswd via the system's libxcrypt; no extra dependency

ROOT = Path(__file__).resolve().parents[3]
REGISTRY_SCRIPT = ROOT / "scripts" / "services" / "registry.sh"
USER, PASSWORD = "puller", "node-pull-pw"


@dataclass(frozen=True)
class NodeImages:
    """busybox in an open registry (``image``; its default command serves /www, /healthz
    included, on $PORT) and in one that needs a login (``private_image``, pulled with
    ``USER``/``PASSWORD``)."""

    image: str
    digest: str
    private_image: str
    private_host: str
    #: the same busybox whose default command prints ``line 0`` .. ``line 49`` and exits 1
    crash_image: str = ""

    @property
    def registry(self) -> str:
        """host:port of the open registry (no credentials needed)."""
        return self.image.split("/", 1)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def real_cluster(kube_control_plane: ControlPlane) -> Iterator[ControlPlane]:
    if kube_control_plane.node_kind == "real":
        yield kube_control_plane
        return
    with started(lambda: start_control_plane(node="real"), stop_control_plane) as plane:
        yield plane


def _start_registry(directory: Path, htpasswd: Path | None = None) -> str:
    args = ["bash", str(REGISTRY_SCRIPT), "start", str(directory), str(free_port())]
    if htpasswd is not None:
        args.append(str(htpasswd))
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()
    return f"127.0.0.1:{out[0]}"


#: Where the test images are built once (busybox from Debian's busybox-static, one layer):
#: keyed by the busybox binary and the recipe, so a new busybox or recipe builds anew.
IMAGE_CACHE = Path(os.environ.get("ENVFORGE_CACHE", Path.home() / ".cache" / "envforge")) \
    / "test-images"
#: The image's default command serves /www (index.html, healthz) over HTTP on $PORT (8080):
#: what a template's Deployment runs when it names no command (readiness /healthz passes);
#: the tests that want another behaviour give a command.
#: PID 1 is a shell that exits on SIGTERM (httpd as PID 1 would ignore it: every pod deletion
#: would wait out its whole grace period).
WEB_CONFIG = ["--port", "8080/tcp", "--env", "PORT=8080", "--workingdir", "/www",
              "--entrypoint", '["/bin/sh", "-c", "trap \'exit 0\' TERM INT; '
              'httpd -f -v -p \\"${PORT:-8080}\\" -h /www & wait"]']
#: The same image whose default command crashes (an app that fails at start-up).
CRASH_CONFIG = ["--entrypoint",
                '["/bin/sh", "-c", "for i in $(seq 0 49); do echo line $i; done; exit 1"]']
RECIPE = "busybox-web-1:" + json.dumps([WEB_CONFIG, CRASH_CONFIG])


def cached_test_images() -> dict[str, Path]:
    """``{"web": archive, "crash": archive}``: docker-archive tars built with buildah once
    into IMAGE_CACHE (a few seconds), then only copied into each session's registry."""
    busybox = Path("/bin/busybox")
    key = hashlib.sha256(busybox.read_bytes() + RECIPE.encode()).hexdigest()[:16]
    folder = IMAGE_CACHE / key
    archives = {name: folder / f"{name}.tar" for name in ("web", "crash")}
    if all(a.is_file() for a in archives.values()):
        return archives
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=IMAGE_CACHE))
    try:
        context = work / "context"
        (context / "www").mkdir(parents=True)
        shutil.copy2(busybox, context / "busybox")
        (context / "www" / "index.html").write_text("<h1>envforge test image</h1>\n")
        (context / "www" / "healthz").write_text("ok\n")
        (context / "Containerfile").write_text(
            "FROM scratch\nCOPY busybox /bin/busybox\n"
            'RUN ["/bin/busybox", "--install", "-s", "/bin"]\nCOPY www /www\n')
        buildah = ["buildah", "--root", str(work / "storage"), "--runroot", str(work / "run"),
                   "--storage-driver", "vfs"]
        subprocess.run([*buildah, "bud", "-q", "--isolation", "chroot", "-t", "busybox-base",
                        "-f", str(context / "Containerfile"), str(context)],
                       check=True, capture_output=True)
        for name, config in (("web", WEB_CONFIG), ("crash", CRASH_CONFIG)):
            container = subprocess.run([*buildah, "from", "busybox-base"], check=True,
                                       capture_output=True, text=True).stdout.strip()
            subprocess.run([*buildah, "config", *config, container], check=True,
                           capture_output=True)
            subprocess.run([*buildah, "commit", "-q", container,
                            f"docker-archive:{work / name}.tar:envforge-test/{name}:1"],
                           check=True, capture_output=True)
        folder.mkdir(exist_ok=True)
        for name, archive in archives.items():  # a rename: another session sees all or none
            os.replace(work / f"{name}.tar", archive)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return archives


def push_archive(archive: Path, image: str, creds: str | None = None) -> None:
    """Copy a cached image archive into a registry (skopeo, plain HTTP)."""
    args = ["skopeo", "copy", "-q", "--dest-tls-verify=false"]
    if creds:
        args += ["--dest-creds", creds]
    subprocess.run([*args, f"docker-archive:{archive}", f"docker://{image}"], check=True,
                   capture_output=True)


@pytest.fixture(scope="session")
def node_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeImages]:
    for tool in ("docker-registry", "buildah", "skopeo"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (run scripts/bootstrap.sh)")
    base = tmp_path_factory.mktemp("node-images")
    htpasswd = base / "htpasswd"
    htpasswd.write_text(f"{USER}:{crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}\n")
    open_host = _start_registry(base / "open")
    try:
        private_host = _start_registry(base / "private", htpasswd)
    except subprocess.CalledProcessError:
        subprocess.run(["bash", str(REGISTRY_SCRIPT), "stop", str(base / "open")], check=False)
        raise
    try:
        archives = cached_test_images()
        image = f"{open_host}/base/busybox:1"
        push_archive(archives["web"], image)
        crash = f"{open_host}/base/crash:1"
        push_archive(archives["crash"], crash)
        private = f"{private_host}/team/busybox:1"
        push_archive(archives["web"], private, f"{USER}:{PASSWORD}")
        digest = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--format",
                                 "{{.Digest}}", f"docker://{image}"], check=True,
                                capture_output=True, text=True).stdout.strip()
        yield NodeImages(image, digest, private, private_host, crash)
    finally:
        for name in ("open", "private"):
            subprocess.run(["bash", str(REGISTRY_SCRIPT), "stop", str(base / name)],
                           check=False)


def publish_image(images: NodeImages, archive: str, repository: str) -> str:
    """The cached ``web`` or ``crash`` image under another name in the open registry (e.g.
    what a template's Deployment names: ``<registry>/<environment>:latest``)."""
    image = f"{images.registry}/{repository}"
    push_archive(cached_test_images()[archive], image)
    return image


@pytest.fixture
def node_namespace(real_cluster: ControlPlane) -> Iterator[str]:
    """A fresh namespace on the real node's cluster, deleted (without waiting) afterwards."""
    name = f"rn-{uuid.uuid4().hex[:8]}"
    real_cluster.kubectl("create", "namespace", name)
    yield name
    real_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply(plane: ControlPlane, namespace: str, *objects: dict[str, Any]) -> None:
    plane.kubectl("-n", namespace, "apply", "-f", "-",
                  stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                    "items": list(objects)}))


def pod(name: str, image: str, command: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": image, "command": ["sh", "-c", command]}
    container.update(spec.pop("container", {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 1, **spec}}


def get(plane: ControlPlane, namespace: str, kind: str, name: str) -> dict[str, Any]:
    out = plane.kubectl("-n", namespace, "get", kind, name, "-o", "json").stdout
    return dict(json.loads(out))


def wait_until(what: str, probe: Callable[[], Any], seconds: float = 90,
               every: float = 0.5) -> Any:
    """``probe()``'s first truthy answer; fails naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen in {seconds:.0f} s")
        time.sleep(every)


def container_status(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    statuses = get(plane, namespace, "pod", name).get("status", {}).get("containerStatuses")
    return dict(statuses[0]) if statuses else {}


def docker_config_secret(host: str, username: str, password: str) -> dict[str, Any]:
    """A kubernetes.io/dockerconfigjson Secret for ``host`` (what imagePullSecrets name)."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    config = {"auths": {host: {"username": username, "password": password, "auth": auth}}}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}}


APP_SOURCE = ROOT / "templates" / "preview-app" / "app"
POSTGRES_SCRIPT = ROOT / "scripts" / "services" / "postgres.sh"
NODE_SCRIPT = ROOT / "scripts" / "services" / "node.sh"


@dataclass(frozen=True)
class Database:
    """A PostgreSQL server on 127.0.0.1 and where the node's pods reach it."""

    port: int
    gateway: str  # this machine as the node's pods see it


@pytest.fixture(scope="session")
def node_database(real_cluster: ControlPlane) -> Iterator[Database]:
    """A throw-away PostgreSQL (scripts/services/postgres.sh) exposed to the node's pods."""
    directory = Path(tempfile.mkdtemp(prefix="envforge-node-pg-"))  # postgres must enter it
    started = subprocess.run(["bash", str(POSTGRES_SCRIPT), "start", str(directory),
                              str(free_port())], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"could not start the test PostgreSQL: {started.stderr}")
    try:
        gateway = subprocess.run(["bash", str(NODE_SCRIPT), "expose",
                                  str(real_cluster.kubeconfig.parent),
                                  started.stdout.split()[0]],
                                 capture_output=True, text=True, check=True).stdout.strip()
        yield Database(int(started.stdout.split()[0]), gateway)
    finally:
        subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop", str(directory)], check=False)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def app_image(node_images: NodeImages, tmp_path_factory: pytest.TempPathFactory) -> str:
    """templates/preview-app/app built (static Go) into a one-layer image in the open
    registry."""
    if shutil.which("go") is None:
        pytest.fail("Go is not installed: the demo application is built from Go")
    base = tmp_path_factory.mktemp("app-image")
    subprocess.run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o",
                    str(base / "shop"), "."], cwd=APP_SOURCE, check=True, capture_output=True,
                   env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"})
    (base / "Containerfile").write_text(
        'FROM scratch\nCOPY shop /shop\nUSER 10001\nENTRYPOINT ["/shop"]\n')
    image = node_images.image.rsplit("/", 2)[0] + "/demo/shop:1"
    buildah = ["buildah", "--root", str(base / "storage"), "--runroot", str(base / "run"),
               "--storage-driver", "vfs"]
    subprocess.run([*buildah, "bud", "-q", "--isolation", "chroot", "-t", image,
                    "-f", str(base / "Containerfile"), str(base)], check=True,
                   capture_output=True)
    subprocess.run([*buildah, "push", "-q", "--tls-verify=false", image, f"docker://{image}"],
                   check=True, capture_output=True)
    return image
