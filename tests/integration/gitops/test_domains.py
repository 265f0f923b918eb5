"""Binding custom hosts against a real bare remote: one commit per change with trailers, no
commit when nothing changes, refusals that name the other environment, and two machines
racing to bind one host to two environments (exactly one wins)."""

import threading
from pathlib import Path

import pytest
import yaml

from envforge.cli import main
from envforge.errors import DomainConflictError, DomainError, EnvironmentNotFoundError
from envforge.git.publishing import PreCommitHook
from envforge.gitops.repository import open_store
from envforge.gitops.store import EnvironmentStore
from tests.helpers import commit_count, git, remote_files
from tests.integration.gitops.conftest import StoreFactory
from tests.unit.gitops.helpers import spec, write_manifests

DOMAIN_FILE = "environments/{}/manifests/envforge-domain-shop-example-com.yaml"


def _create(store: EnvironmentStore, name: str, manifests: Path) -> None:
    assert store.create(store.new_record(name, spec(), "48h", "run-0"), manifests,
                        "run-0").commit


def _show(bare: Path, path: str) -> str:
    return git("--git-dir", str(bare), "show", f"main:{path}")


def test_bind_and_unbind(store: EnvironmentStore, bare_repo: Path, manifests: Path) -> None:
    _create(store, "pr-1", manifests)
    _create(store, "pr-2", manifests)
    commits = commit_count(bare_repo)

    bound = store.bind_domain("pr-1", "Shop.Example.com", "run-1")
    assert bound.commit and bound.record is not None
    assert bound.record.spec.domains == ["shop.example.com"]
    assert commit_count(bare_repo) == commits + 1
    message = git("--git-dir", str(bare_repo), "log", "-1", "--format=%B", "main")
    assert message.startswith("env bind-domain pr-1 shop.example.com")
    for trailer in ("Envforge-Environment: pr-1", "Envforge-Run: run-1",
                    "Envforge-Change: bind-domain", "Envforge-Template: python-service"):
        assert trailer in message
    ingress = yaml.safe_load(_show(bare_repo, DOMAIN_FILE.format("pr-1")))
    assert ingress["spec"]["rules"][0]["host"] == "shop.example.com"
    assert store.get("pr-1").spec.domains == ["shop.example.com"]

    again = store.bind_domain("pr-1", "shop.example.com.", "run-2")
    assert again.commit is None and commit_count(bare_repo) == commits + 1

    with pytest.raises(DomainConflictError, match="already bound to environment 'pr-1'"):
        store.bind_domain("pr-2", "shop.example.com", "run-3")
    with pytest.raises(DomainConflictError, match="already bound to environment 'pr-2'"):
        store.bind_domain("pr-1", store.get("pr-2").status.host, "run-3")
    with pytest.raises(DomainError, match="own generated host"):
        store.bind_domain("pr-1", store.get("pr-1").status.host, "run-3")
    with pytest.raises(DomainError, match="not a DNS name"):
        store.bind_domain("pr-1", "shop", "run-3")
    with pytest.raises(EnvironmentNotFoundError, match="'pr-9'"):
        store.bind_domain("pr-9", "api.example.com", "run-3")
    assert commit_count(bare_repo) == commits + 1
    assert git("status", "--porcelain", cwd=store.publisher.workdir) == ""

    assert store.extend("pr-1", "3d", "run-4").commit  # re-rendering keeps the custom host
    assert DOMAIN_FILE.format("pr-1") in remote_files(bare_repo)

    unbound = store.unbind_domain("pr-1", "shop.example.com", "run-5")
    assert unbound.commit and unbound.record is not None and unbound.record.spec.domains == []
    assert DOMAIN_FILE.format("pr-1") not in remote_files(bare_repo)
    assert "domains" not in _show(bare_repo, "environments/pr-1/environment.yaml")
    assert "Envforge-Change: unbind-domain" in git("--git-dir", str(bare_repo), "log", "-1",
                                                   "--format=%B", "main")
    commits = commit_count(bare_repo)
    assert store.unbind_domain("pr-1", "shop.example.com", "run-6").commit is None
    assert commit_count(bare_repo) == commits

    assert store.bind_domain("pr-2", "shop.example.com", "run-7").commit  # free again
    assert DOMAIN_FILE.format("pr-2") in remote_files(bare_repo)


def _racing(hook: PreCommitHook | None, barrier: threading.Barrier) -> PreCommitHook:
    """A pre-commit hook that holds each writer's first commit until both have checked the
    host against the same remote head, so the race is certain, not left to timing."""
    first = threading.local()

    def wait_then_guard(root: Path, paths: list[str]) -> None:
        if not getattr(first, "done", False):
            first.done = True
            barrier.wait(timeout=60)
        if hook is not None:
            hook(root, paths)

    return wait_then_guard


def test_two_machines_binding_one_host_exactly_one_wins(
        stores: StoreFactory, bare_repo: Path, manifests: Path) -> None:
    machines = {"pr-1": stores("machine-1"), "pr-2": stores("machine-2")}
    for name, machine in machines.items():
        _create(machine, name, manifests)
    commits = commit_count(bare_repo)
    barrier = threading.Barrier(2)
    for machine in machines.values():
        machine.publisher.pre_commit = _racing(machine.publisher.pre_commit, barrier)
    won: list[str] = []
    refused: list[DomainConflictError] = []
    unexpected: list[BaseException] = []

    def bind(name: str) -> None:
        try:
            assert machines[name].bind_domain(name, "shop.example.com", f"run-{name}").commit
            won.append(name)
        except DomainConflictError as e:
            refused.append(e)
        except BaseException as e:
            unexpected.append(e)

    threads = [threading.Thread(target=bind, args=(name,)) for name in machines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert unexpected == []
    assert len(won) == 1 and len(refused) == 1
    (winner,), (loser,) = won, set(machines) - set(won)
    assert refused[0].environment == winner
    assert f"to environment {loser!r}: it is already bound to environment {winner!r}" in str(
        refused[0])
    assert commit_count(bare_repo) == commits + 1
    domain_files = [f for f in remote_files(bare_repo) if "envforge-domain-" in f]
    assert domain_files == [DOMAIN_FILE.format(winner)]
    for machine in machines.values():  # the loser's copy is clean and at the remote head
        assert git("status", "--porcelain", cwd=machine.publisher.workdir) == ""


def test_cli_bind_and_unbind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open_store() as store:  # the embedded repository the CLI uses
        _create(store, "pr-5", write_manifests(tmp_path / "manifests"))
        _create(store, "pr-6", write_manifests(tmp_path / "manifests"))
    assert main(["env", "bind-domain", "pr-5", "Shop.Example.com"]) == 0
    assert "bound shop.example.com to environment pr-5 (commit " in capsys.readouterr().out
    assert main(["env", "bind-domain", "pr-5", "shop.example.com"]) == 0
    assert "already bound to environment pr-5; nothing committed" in capsys.readouterr().out
    assert main(["env", "bind-domain", "pr-6", "shop.example.com"]) == 1
    assert "already bound to environment 'pr-5'" in capsys.readouterr().err
    assert main(["env", "unbind-domain", "pr-5", "shop.example.com"]) == 0
    assert "unbound shop.example.com from environment pr-5" in capsys.readouterr().out
    with open_store() as store:
        assert store.get("pr-5").spec.domains == []
