"""An update or upgrade of an existing environment is recorded before its steps, so what it
pushed before being killed is removed by the next change or destroy, and never what the live
environment uses (its database and Secrets are not the change's, an image that was in the
registry before is never recorded). No services: the ledger and the intent on disk."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest

from envforge.capabilities.ledger import RunLedger, change_ledger_path
from envforge.core.processes import ProcessIdentity
from envforge.environments.change_intents import (
    ChangeIntent,
    begin_change,
    change_intent_file,
    change_recorded,
    end_change,
    read_change_intent,
    recover_killed_change,
)
from envforge.errors import EnvironmentExistsError, StepFailedError
from envforge.services import Services
from tests.services_fixtures import make_services


@pytest.fixture
def services() -> Services:
    return make_services()


def _name() -> str:
    return f"chg-{uuid.uuid4().hex[:8]}"


def test_a_change_gets_a_ledger_that_records_and_a_clean_end_removes_both(
        services: Services) -> None:
    name, run = _name(), uuid.uuid4().hex[:12]
    home = services.settings.paths.home
    assert not RunLedger.for_run(home, name, run).enabled  # nothing recorded: no ledger
    with change_recorded(services, name, "update", run) as cleaned:
        assert cleaned is None
        ledger = RunLedger.for_run(home, name, run)
        assert ledger.enabled and not RunLedger.for_run(home, name, "other-run").enabled
        ledger.record("image", "intended", tag="r/app:1")
        assert change_ledger_path(home, name).exists()
    assert read_change_intent(services, name) is None
    assert not change_ledger_path(home, name).exists()


def test_a_live_change_refuses_a_second_one_in_one_line(services: Services) -> None:
    name = _name()
    intent, _ = begin_change(services, name, "update", "run-a")
    with pytest.raises(EnvironmentExistsError, match=r"being changed \(update\) by run run-a")\
            as caught:
        begin_change(services, name, "upgrade", "run-b")
    assert "\n" not in str(caught.value)
    end_change(services, intent)
    assert read_change_intent(services, name) is None


def test_an_unexpected_error_abandons_the_intent_and_the_next_change_works_it_off(
        services: Services) -> None:
    name = _name()
    with pytest.raises(RuntimeError), change_recorded(services, name, "update", "run-a"):
        raise RuntimeError("boom")
    intent = read_change_intent(services, name)
    assert intent is not None and intent.abandoned and not intent.live()
    with change_recorded(services, name, "update", "run-b") as cleaned:
        assert cleaned is not None and cleaned.intent.runId == "run-a"
        assert cleaned.images == [] and cleaned.repositories == []
        assert "cleaned up the update of" in cleaned.summary()
    assert read_change_intent(services, name) is None


def test_steps_rolled_back_end_clean_but_a_failed_rollback_is_kept(services: Services) -> None:
    name = _name()
    with pytest.raises(StepFailedError), change_recorded(services, name, "update", "r1"):
        raise StepFailedError("s", "image:build", "x", rolled_back=["image"])
    assert read_change_intent(services, name) is None
    failed = StepFailedError("s", "image:build", "x",
                             rollback_failures=["image: registry down"])
    with pytest.raises(StepFailedError), change_recorded(services, name, "update", "r2"):
        raise failed
    kept = read_change_intent(services, name)
    assert kept is not None and kept.abandoned


def test_a_killed_process_s_change_is_not_live(services: Services) -> None:
    name = _name()
    gone = ProcessIdentity(host=os.uname().nodename, pid=2 ** 22 + 7, startTicks=1,
                           bootId="not-this-boot")
    intent = ChangeIntent(name=name, change="upgrade", runId="dead",
                          startedAt=datetime(2026, 1, 1, tzinfo=UTC), process=gone)
    path = change_intent_file(services, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(intent.model_dump_json())
    entry = '{"runId":"dead","kind":"image","state":"intended","tag":"r/app:9"}\n'
    change_ledger_path(services.settings.paths.home, name).write_text(entry)
    cleaned = recover_killed_change(services, name)
    assert cleaned is not None and cleaned.unconfirmed == ["image r/app:9"]
    assert "check by hand" in cleaned.summary()
    assert not path.exists()
    assert not [p for p in os.listdir(path.parent) if p.startswith(name)]
