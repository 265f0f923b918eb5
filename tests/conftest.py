"""Session-wide fixtures: an isolated ENVFORGE_HOME per test, and one temporary Prefect server
for the whole session (starting one costs ~10 s)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.argocd import ArgoCD, start_argocd, stop_argocd
from tests.helpers import git, started
from tests.kube import EXTERNAL, ControlPlane, start_control_plane, stop_control_plane

if TYPE_CHECKING:  # imported where used: the unit tests' workers need not load Prefect first
    from envforge.services import Services

# Before prefect is imported anywhere: no telemetry calls out of this offline machine.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The Vault paths templates may read (envforge.capabilities.vault_scope): each template's own
# folder, as by default, plus the per-test folders the suite seeds in its OpenBao
# (tests/integration/secrets/conftest.py, the forms tests), as an operator lists shared ones.
# tests/unit/security/test_vault_scope.py checks the default itself.
TEST_VAULT_PATHS = "*/{template}/** */envforge-test-*/** */forms-*/**"
os.environ.setdefault("ENVFORGE_VAULT_TEMPLATE_PATHS", TEST_VAULT_PATHS)
# The repositories templates may build images from (envforge.capabilities.image_sources): the
# network defaults plus the local repositories the tests make in their temporary folders (an
# operator lists its folder of local repositories the same way; the demo lists its apps).
# tests/unit/security/test_image_sources.py checks the default itself.
os.environ.setdefault("ENVFORGE_IMAGE_SOURCES", "https:// ssh:// git@ file:///")


@pytest.fixture(autouse=True)
def envforge_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own state directory, so nothing touches ~/.envforge."""
    home = tmp_path_factory.mktemp("envforge-home")
    monkeypatch.setenv("ENVFORGE_HOME", str(home))
    monkeypatch.delenv("ENVFORGE_GITOPS_URL", raising=False)
    monkeypatch.delenv("ENVFORGE_TEMPLATES_PATH", raising=False)
    return home


@pytest.fixture
def services_from(envforge_home: Path) -> Callable[[Mapping[str, str]], Services]:
    """Services for this test built the way the composition roots build them, from the settings
    it names (``services_from({"ENVFORGE_BUILDAH_ROOT": ...})``) over its own home, instead of
    patching the process environment: settings and connections read only that mapping."""
    from blocks.loader import BlockConnections
    from envforge.composition import build_services
    from envforge.settings import EnvforgeSettings

    def build(variables: Mapping[str, str]) -> Services:
        settings = EnvforgeSettings.from_environ({"ENVFORGE_HOME": str(envforge_home),
                                                  **variables})
        return build_services(settings, BlockConnections(settings))
    return build


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A real, temporary, SQLite-backed Prefect server for the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def kube_control_plane() -> Iterator[ControlPlane]:
    """The real Kubernetes API server for the session (see tests/kube.py)."""
    with started(start_control_plane, stop_control_plane) as plane:
        yield plane


@pytest.fixture(scope="session")
def argocd_service(kube_control_plane: ControlPlane) -> Iterator[ArgoCD]:
    """The real Argo CD (application controller, repo server, Redis) for the session, on the
    session's API server (see tests/argocd.py): one for every test, as one per cluster."""
    with started(lambda: start_argocd(kube_control_plane), stop_argocd) as argocd:
        yield argocd


#: Fixtures that put a test's module on one worker (``--dist loadgroup``, scripts/run-tests.sh):
#: the session's cluster, where a module's tests may name their environments, namespaces and
#: Applications alike one after the other (pr-9, then pr-9 again), so they never run at once; and
#: any fixture set up once per module (a cloned database, a warm runner), so it is set up once
#: rather than once per worker. Every other test goes to whichever worker is free: each worker
#: has its own Prefect, PostgreSQL, registry and OpenBao (session fixtures on free ports) and
#: its own temporary folders, and the tests of two modules never share a name in the cluster
#: (uuid suffixes, or names of their own such as pr-31).
_SHARED_CLUSTER = "kube_control_plane"
_GROUPED_SCOPES = frozenset({"package", "module", "class"})


def xdist_group_of(item: pytest.Item) -> str | None:
    """The worker group of ``item``: its module's path, or None (any worker)."""
    module = item.nodeid.split("::", 1)[0]
    if _SHARED_CLUSTER in getattr(item, "fixturenames", ()):
        return module
    info = getattr(item, "_fixtureinfo", None)
    if info is not None and any(definitions[-1].scope in _GROUPED_SCOPES
                                for definitions in info.name2fixturedefs.values()
                                if definitions):
        return module
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Parallel workers: a module that uses the session's cluster or a module-scoped fixture
    runs on one worker (see ``xdist_group_of``; xdist hands out the largest groups first)."""
    for item in items:
        group = xdist_group_of(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Which Kubernetes the session runs against, so a CI log shows it."""
    external = os.environ.get(EXTERNAL)
    if not external:
        return ["kubernetes: none given; the pinned control plane starts on first use "
                "(scripts/services/kubernetes.sh)"]
    try:
        version = ControlPlane(Path(external)).version()
    except Exception as e:  # the header must never stop the session
        return [f"kubernetes: {external}: /version failed: {e}"]
    return [f"kubernetes: {version.get('gitVersion')} ({version.get('platform')}, "
            f"go {version.get('goVersion')}) at {ControlPlane(Path(external)).server}"]


@pytest.fixture
def bare_repo(tmp_path: Path) -> Path:
    """An empty bare repository (branch main) to publish into, like a fresh GitOps remote."""
    repo = tmp_path / "remote.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(repo))
    return repo
