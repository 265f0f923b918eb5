"""20 concurrent creates of different environments against one remote, each with its own
cache directory as separate machines would have: all land, no commit is lost."""

import threading
from pathlib import Path

import pytest

from envforge.gitops.store import EnvironmentStore
from tests.helpers import commit_count, git, remote_files
from tests.integration.gitops.conftest import StoreFactory
from tests.unit.gitops.helpers import spec

pytestmark = pytest.mark.slow  # about 15 s: twenty clones racing on one remote

WRITERS = 20


def test_twenty_concurrent_creates_all_land(stores: StoreFactory, bare_repo: Path,
                                            manifests: Path) -> None:
    machines: list[EnvironmentStore] = [stores(f"machine-{i}") for i in range(WRITERS)]
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def create(i: int) -> None:
        try:
            store = machines[i]
            record = store.new_record(f"pr-{i}", spec(), "48h", f"run-{i}")
            start.wait(timeout=60)
            assert store.create(record, manifests, f"run-{i}").commit
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert errors == []
    assert commit_count(bare_repo) == WRITERS
    created = {f.split("/")[1] for f in remote_files(bare_repo) if f.startswith("argocd/")}
    assert created == {f"pr-{i}.yaml" for i in range(WRITERS)}
    log = git("--git-dir", str(bare_repo), "log", "--format=%(trailers:key=Envforge-Run,"
              "valueonly)", "main")
    assert sorted(line for line in log.splitlines() if line) == sorted(
        f"run-{i}" for i in range(WRITERS))
    assert sorted(r.name for r in machines[0].list()) == sorted(f"pr-{i}" for i in
                                                                range(WRITERS))
