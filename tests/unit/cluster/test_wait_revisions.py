"""The wait accepts a synced revision that contains the expected commit (a later head of the
branch), asks Argo CD to refresh while it is not there yet, and finds the app-of-apps from the
tracking id Argo CD put on the environment's Application."""

from __future__ import annotations

from typing import Any

import pytest

from envforge.cluster.wait import WaitPolicy, WaitTarget, wait_until_healthy
from envforge.errors import EnvironmentNotHealthyError
from tests.unit.cluster.fake_reader import FakeReader
from tests.unit.cluster.objects import application, deployment, pod

PUSHED, LATER, OTHER = "a" * 40, "b" * 40, "c" * 40
TARGET = WaitTarget("pr-1", "pr-1", expected_revision=PUSHED)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class RefreshingReader(FakeReader):
    """Records the refresh annotations the wait writes through ``custom``."""

    def __init__(self, app: dict[str, Any]) -> None:
        super().__init__(app, [deployment("web", "pr-1")], [pod("web-a", "pr-1", "web")])
        self.refreshed: list[str] = []
        self.custom = self

    def patch_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                       plural: str, name: str, body: dict[str, Any],
                                       **_: Any) -> None:
        assert body == {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}
        self.refreshed.append(name)


def synced_at(revision: str) -> dict[str, Any]:
    app = application("pr-1", revision=revision)
    app["spec"]["source"] = {"repoURL": "file:///srv/gitops.git", "targetRevision": "main"}
    app["metadata"]["annotations"] = {
        "argocd.argoproj.io/tracking-id": "envforge-root:argoproj.io/Application:argocd/pr-1"}
    return app


def test_a_later_head_containing_the_commit_is_accepted() -> None:
    asked: list[tuple[str, ...]] = []

    def contains(repo: str, branch: str, later: str, earlier: str) -> bool:
        asked.append((repo, branch, later, earlier))
        return True

    clock = Clock()
    health = wait_until_healthy(RefreshingReader(synced_at(LATER)), TARGET,  # type: ignore[arg-type]
                                WaitPolicy(timeout_seconds=30), clock=clock, sleep=clock.sleep,
                                contains=contains)
    assert health.healthy and health.application.revision == LATER
    assert asked == [("file:///srv/gitops.git", "main", LATER, PUSHED)]


def test_a_revision_without_the_commit_is_waited_out_and_refreshed() -> None:
    reader, clock = RefreshingReader(synced_at(OTHER)), Clock()
    with pytest.raises(EnvironmentNotHealthyError, match="waiting for aaaaaaaaaaaa"):
        wait_until_healthy(reader, TARGET,  # type: ignore[arg-type]
                           WaitPolicy(timeout_seconds=60, refresh_every_seconds=20),
                           clock=clock, sleep=clock.sleep,
                           contains=lambda *_: False)
    # the environment's Application and the app-of-apps named by its tracking id, at the
    # first snapshot that was not there yet and then every 20 s of the 60
    assert reader.refreshed[:2] == ["pr-1", "envforge-root"]
    assert 3 <= len(reader.refreshed) // 2 <= 4


def test_healthy_at_the_pushed_commit_asks_nothing() -> None:
    reader, clock = RefreshingReader(synced_at(PUSHED)), Clock()

    def contains(*_: str) -> bool:
        raise AssertionError("not asked when the revision is the pushed one")

    wait_until_healthy(reader, TARGET, WaitPolicy(), clock=clock,  # type: ignore[arg-type]
                       sleep=clock.sleep, contains=contains)
    assert reader.refreshed == []
