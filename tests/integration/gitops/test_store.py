"""Create, list, show, update, extend and destroy against a real bare remote; every bad input
fails with a clear error and commits nothing; a rejected push leaves the copy clean."""

from pathlib import Path

import pytest

from envforge.errors import (
    EnvironmentExistsError,
    EnvironmentNameError,
    EnvironmentNotFoundError,
    ManifestValidationError,
    PushRejectedError,
    SecretInGitError,
    TTLError,
)
from envforge.gitops.record import EnvironmentRecord
from envforge.gitops.store import EnvironmentStore
from tests.helpers import commit_count, git, reject_pushes, remote_files
from tests.integration.gitops.conftest import StoreFactory
from tests.unit.gitops.helpers import DEPLOYMENT, spec, write_manifests


def _create(store: EnvironmentStore, name: str, manifests: Path, ttl: str = "48h",
            **parameters: object) -> EnvironmentRecord:
    record = store.new_record(name, spec(**parameters), ttl, "run-1")
    result = store.create(record, manifests, "run-1")
    assert result.commit
    return record


def _trailers(bare: Path, rev: str = "main") -> str:
    return git("--git-dir", str(bare), "log", "-1", "--format=%B", rev)


def _clean(store: EnvironmentStore, bare: Path) -> None:
    """The cached working copy is exactly the remote: no stray files, same head."""
    assert git("status", "--porcelain", "--ignored", cwd=store.publisher.workdir) == ""
    if commit_count(bare):
        assert git("rev-parse", "HEAD", cwd=store.publisher.workdir) == git(
            "--git-dir", str(bare), "rev-parse", "main")


def test_lifecycle(store: EnvironmentStore, bare_repo: Path, manifests: Path) -> None:
    record = _create(store, "pr-1", manifests)
    files = remote_files(bare_repo)
    assert "argocd/pr-1.yaml" in files and "environments/pr-1/environment.yaml" in files
    assert "environments/pr-1/manifests/envforge-namespace.yaml" in files
    message = _trailers(bare_repo)
    assert message.startswith("env create pr-1")
    for trailer in ("Envforge-Environment: pr-1", "Envforge-Template: python-service",
                    "Envforge-Run: run-1"):
        assert trailer in message

    assert [r.name for r in store.list()] == ["pr-1"]
    assert store.get("pr-1").status.host == record.status.host

    unchanged = store.update("pr-1", lambda r: r, manifests, "run-2")
    assert unchanged.commit is None and commit_count(bare_repo) == 1

    changed = store.update("pr-1", lambda r: r.model_copy(update={"spec": r.spec.model_copy(
        update={"parameters": {"replicas": 3}})}), manifests, "run-3")
    assert changed.commit and changed.record is not None
    assert changed.record.status.host == record.status.host  # stable across updates
    assert changed.record.status.createdAt == record.status.createdAt
    assert "replicas: 3" in git("--git-dir", str(bare_repo), "show",
                                "main:environments/pr-1/manifests/deployment.yaml")
    assert "Envforge-Template: python-service" in _trailers(bare_repo)

    extended = store.extend("pr-1", "5d", "run-4")
    assert extended.commit and extended.record is not None
    assert extended.record.status.expiresAt > record.status.expiresAt
    assert store.get("pr-1").status.expiresAt == extended.record.status.expiresAt

    _create(store, "pr-2", manifests)
    gone = store.destroy("pr-1", "run-5")
    assert gone.commit
    assert git("--git-dir", str(bare_repo), "show", "--name-only", "--format=", "main").count(
        "pr-1") == len([f for f in files if "pr-1" in f])  # one commit removed all of it
    assert not [f for f in remote_files(bare_repo) if "pr-1" in f]
    assert [r.name for r in store.list()] == ["pr-2"]
    _clean(store, bare_repo)


def test_create_of_an_existing_environment_is_refused(stores: StoreFactory, bare_repo: Path,
                                                      manifests: Path) -> None:
    _create(stores("a"), "pr-1", manifests)
    other = stores("b")  # another machine, with its own cache
    with pytest.raises(EnvironmentExistsError, match="'pr-1' already exists"):
        _create(other, "pr-1", manifests)
    assert commit_count(bare_repo) == 1
    _clean(other, bare_repo)


@pytest.mark.parametrize("action", ["update", "extend", "destroy", "show"])
def test_a_missing_environment_is_named(store: EnvironmentStore, bare_repo: Path,
                                        manifests: Path, action: str) -> None:
    _create(store, "pr-1", manifests)
    calls = {"update": lambda: store.update("pr-404", lambda r: r, manifests),
             "extend": lambda: store.extend("pr-404", "1d"),
             "destroy": lambda: store.destroy("pr-404"),
             "show": lambda: store.get("pr-404")}
    with pytest.raises(EnvironmentNotFoundError, match=f"cannot {action} environment 'pr-404'"):
        calls[action]()
    assert commit_count(bare_repo) == 1
    _clean(store, bare_repo)


@pytest.mark.parametrize(("name", "ttl", "error"), [
    ("Bad_Name", "48h", EnvironmentNameError),
    ("a" * 60, "48h", EnvironmentNameError),
    ("pr-1", "two days", TTLError),
    ("pr-1", "30d", TTLError),
])
def test_bad_names_and_ttls_commit_nothing(store: EnvironmentStore, bare_repo: Path,
                                           name: str, ttl: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        store.new_record(name, spec(), ttl)
    assert commit_count(bare_repo) == 0


def test_extend_over_the_maximum_commits_nothing(store: EnvironmentStore, bare_repo: Path,
                                                 manifests: Path) -> None:
    _create(store, "pr-1", manifests)
    with pytest.raises(TTLError, match="exceeds the maximum of 7d"):
        store.extend("pr-1", "8d")
    assert commit_count(bare_repo) == 1


def test_a_manifest_failing_validation_commits_nothing(store: EnvironmentStore, bare_repo: Path,
                                                       tmp_path: Path, manifests: Path) -> None:
    bad = write_manifests(tmp_path / "bad", {
        "deployment.yaml": DEPLOYMENT.replace("containers:", "containerz:")})
    with pytest.raises(ManifestValidationError, match=r"deployment.yaml: Deployment pr-1/app: "
                                                      r"field spec.template.spec"):
        _create(store, "pr-1", bad)
    assert commit_count(bare_repo) == 0
    _create(store, "pr-2", manifests)
    with pytest.raises(ManifestValidationError):  # an update with a bad manifest, too
        store.update("pr-2", lambda r: r, bad)
    assert commit_count(bare_repo) == 1
    _clean(store, bare_repo)


def test_a_rejected_push_leaves_the_working_copy_clean(store: EnvironmentStore, bare_repo: Path,
                                                       manifests: Path) -> None:
    _create(store, "pr-1", manifests)
    reject_pushes(bare_repo, "authentication failed for envforge-bot")
    with pytest.raises(PushRejectedError, match="refused the push"):
        _create(store, "pr-2", manifests)
    assert commit_count(bare_repo) == 1
    _clean(store, bare_repo)
    assert not (store.publisher.workdir / "environments" / "pr-2").exists()


def test_the_secret_guard_refuses_and_names_the_file(store: EnvironmentStore, bare_repo: Path,
                                                     tmp_path: Path) -> None:
    leaky = write_manifests(tmp_path / "leaky", {"config.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"
        "data:\n  DATABASE_URL: postgres://app:pa55word99@db:5432/app\n")})
    with pytest.raises(SecretInGitError) as info:
        _create(store, "pr-1", leaky)
    assert "environments/pr-1/manifests/config.yaml" in str(info.value)
    assert "a password in a URL" in str(info.value) and "pa55word99" not in str(info.value)
    assert commit_count(bare_repo) == 0
    _clean(store, bare_repo)


def test_the_guard_knows_the_runs_secret_values(stores: StoreFactory, bare_repo: Path,
                                                tmp_path: Path) -> None:
    from envforge.core.secret_guard import SecretGuard

    store = stores("guarded")
    store.publisher.pre_commit = SecretGuard(known_secrets=["s3cr3t-from-vault"])
    leaky = write_manifests(tmp_path / "leaky", {"config.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"
        "data:\n  API: s3cr3t-from-vault\n")})
    with pytest.raises(SecretInGitError, match="secret known to this run"):
        _create(store, "pr-1", leaky)
    assert commit_count(bare_repo) == 0
