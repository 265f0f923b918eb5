"""Sleep without Git: replicas rewritten and restored, the schedule's decisions, the policy's
bad input, and how sleeping time counts toward expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from envforge.environments.lifecycle import decide_reaping
from envforge.environments.sleep import effective_expiry, restore_replicas, scale_to_zero
from envforge.environments.sleep_schedule import (
    DEFAULT_POLICY,
    decide_sleep,
    load_policy,
    parse_policy,
)
from envforge.errors import ConfigurationError
from envforge.gitops.record import (
    EnvironmentRecord,
    EnvironmentSpec,
    EnvironmentStatus,
    Metadata,
    SleepState,
)
from envforge.settings import EnvforgeSettings, LifecycleSection

WORKLOADS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: 3}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec: {}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: cache
  annotations: {envforge.dev/sleep: never}
spec: {replicas: 1}
"""
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"

# 2026-11-25 is a Wednesday
WEDNESDAY_NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WEDNESDAY_NIGHT = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def record(name: str = "pr-1", env_type: str = "preview", deployed: datetime = WEDNESDAY_NOON,
           sleeping: SleepState | None = None,
           expires: datetime = WEDNESDAY_NOON + timedelta(days=2)) -> EnvironmentRecord:
    return EnvironmentRecord(
        metadata=Metadata(name=name),
        spec=EnvironmentSpec.model_validate({"template": "web", "type": env_type,
                                             "owner": "group:a"}),
        status=EnvironmentStatus(namespace=name, host=f"{name}.x.test",
                                 url=f"https://{name}.x.test", createdAt=deployed,
                                 expiresAt=expires, lastDeployedAt=deployed, sleeping=sleeping))


def test_scale_to_zero_records_replicas_and_leaves_other_files_byte_for_byte() -> None:
    asleep, replicas = scale_to_zero({"app.yaml": WORKLOADS, "svc.yaml": SERVICE})
    assert replicas == {"app.yaml#Deployment/web": 3, "app.yaml#Deployment/api": None}
    web, api, cache = yaml.safe_load_all(asleep["app.yaml"])
    assert web["spec"]["replicas"] == 0 and api["spec"]["replicas"] == 0
    assert cache["spec"]["replicas"] == 1  # marked never: stays up
    assert asleep["svc.yaml"] == SERVICE

    awake = restore_replicas(asleep, replicas)
    web, api, cache = yaml.safe_load_all(awake["app.yaml"])
    assert web["spec"]["replicas"] == 3 and "replicas" not in api["spec"]
    assert awake["svc.yaml"] == SERVICE


def test_restore_leaves_workloads_it_did_not_record_alone() -> None:
    assert restore_replicas({"svc.yaml": SERVICE}, {"gone.yaml#Deployment/x": 2}) == {
        "svc.yaml": SERVICE}


def test_decide_sleep_by_type_quiet_hours_weekends_and_idleness() -> None:
    policy = parse_policy(DEFAULT_POLICY)
    fresh = record("pr-1", deployed=WEDNESDAY_NOON - timedelta(hours=1))
    idle = record("pr-2", deployed=WEDNESDAY_NOON - timedelta(hours=9))
    staging = record("st-1", env_type="staging", deployed=WEDNESDAY_NOON - timedelta(days=9))
    dev = record("dev-1", env_type="development", deployed=WEDNESDAY_NOON - timedelta(hours=25))
    noon = {d.name: d for d in decide_sleep([fresh, idle, staging, dev], policy,
                                            WEDNESDAY_NOON)}
    assert noon["pr-1"].action == "keep"
    assert noon["pr-2"].action == "sleep" and noon["pr-2"].reason.startswith(
        "idle: no deployment for 8h")
    assert noon["st-1"].action == "keep"
    assert noon["dev-1"].action == "sleep"

    night = {d.name: d for d in decide_sleep([fresh], policy, WEDNESDAY_NIGHT)}
    assert night["pr-1"].action == "sleep" and night["pr-1"].reason.startswith("schedule:")
    weekend = {d.name: d for d in decide_sleep([fresh], policy, SATURDAY_NOON)}
    assert weekend["pr-1"].action == "sleep"
    just_deployed = record("pr-3", deployed=WEDNESDAY_NIGHT - timedelta(minutes=10))
    (grace,) = decide_sleep([just_deployed], policy, WEDNESDAY_NIGHT)
    assert grace.action == "keep"  # a deployment this recent stays awake in quiet hours


def test_schedule_wakes_only_what_the_schedule_put_to_sleep() -> None:
    policy = parse_policy(DEFAULT_POLICY)
    by_schedule = record("pr-1", sleeping=SleepState(since=WEDNESDAY_NIGHT,
                                                     reason="schedule: quiet hours"))
    by_hand = record("pr-2", sleeping=SleepState(since=WEDNESDAY_NIGHT, reason="asked"))
    decisions = {d.name: d.action for d in decide_sleep([by_schedule, by_hand], policy,
                                                        WEDNESDAY_NOON + timedelta(days=1))}
    assert decisions == {"pr-1": "wake", "pr-2": "keep"}
    (still_night,) = decide_sleep([by_schedule], policy, WEDNESDAY_NIGHT + timedelta(hours=2))
    assert still_night.action == "keep"


def test_quiet_hours_follow_the_policy_time_zone() -> None:
    policy = parse_policy({"preview": {"quietHours": "20:00-07:00",
                                       "timezone": "Asia/Tokyo"}})
    # 12:00 UTC is 21:00 in Tokyo
    (decision,) = decide_sleep([record(deployed=WEDNESDAY_NOON - timedelta(hours=2))], policy,
                               WEDNESDAY_NOON)
    assert decision.action == "sleep"


@pytest.mark.parametrize(("policy", "message"), [
    ({"qa": {}}, "unknown environment type 'qa'"),
    ({"preview": {"quietHours": "night"}}, "preview.quietHours"),
    ({"preview": {"quietDays": ["someday"]}}, "unknown day(s)"),
    ({"preview": {"timezone": "Mars/Olympus"}}, "unknown time zone"),
    ({"preview": {"idleHours": -1}}, "preview.idleHours"),
    ({"preview": {"sleepy": True}}, "preview.sleepy"),
    (["preview"], "must map environment types"),
])
def test_a_bad_policy_is_a_one_line_configuration_error(policy: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_policy(policy)
    assert message in str(info.value) and "\n" not in str(info.value)


def _lifecycle(environ: dict[str, str]) -> LifecycleSection:
    return EnvforgeSettings.from_environ(environ).lifecycle


def test_policy_from_the_settings() -> None:
    raw = _lifecycle({"ENVFORGE_SLEEP_POLICY": '{"staging": {"idleHours": 2}}'}).sleep_policy
    assert set(load_policy(raw)) == {"staging"} and load_policy(raw)["staging"].idleHours == 2
    with pytest.raises(ConfigurationError, match="ENVFORGE_SLEEP_POLICY: not YAML"):
        load_policy(_lifecycle({"ENVFORGE_SLEEP_POLICY": "preview: ["}).sleep_policy)


def test_sleeping_time_counts_toward_expiry_unless_configured() -> None:
    expires = WEDNESDAY_NOON + timedelta(hours=1)
    asleep = record(sleeping=SleepState(since=WEDNESDAY_NOON - timedelta(hours=3),
                                        reason="asked"), expires=expires)
    later = WEDNESDAY_NOON + timedelta(hours=2)
    assert effective_expiry(asleep, later, counts=True) == expires
    assert effective_expiry(asleep, later, counts=False) == expires + timedelta(hours=5)
    (counted,) = decide_reaping([asleep], later, sleep_counts=True)
    (not_counted,) = decide_reaping([asleep], later, sleep_counts=False)
    assert counted.action == "destroy"
    assert not_counted.action == "warn"  # expires 4 h later instead, within the 6 h warning
    assert (expires + timedelta(hours=5)).isoformat() in not_counted.reason

    counts = _lifecycle({"ENVFORGE_SLEEP_COUNTS_TOWARD_EXPIRY": "false"})
    assert effective_expiry(asleep, later, counts=counts.sleep_counts_toward_expiry) == \
        expires + timedelta(hours=5)
    assert effective_expiry(asleep, later, counts=_lifecycle({}).sleep_counts_toward_expiry) \
        == expires  # the default: sleeping time counts
    with pytest.raises(ConfigurationError, match="ENVFORGE_SLEEP_COUNTS_TOWARD_EXPIRY: Input should be a valid boolean"):
        _lifecycle({"ENVFORGE_SLEEP_COUNTS_TOWARD_EXPIRY": "sometimes"})


def test_records_without_the_new_fields_read_and_write_as_before() -> None:
    plain = record()
    text = plain.to_yaml()
    assert "sleeping" not in text and "templateVersion" not in text
    assert EnvironmentRecord.from_yaml(text, "x").to_yaml() == text
