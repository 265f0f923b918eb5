"""When environments sleep on their own: a policy per environment type.

    preview:                      # the default policy
      idleHours: 8                # asleep after 8 hours with no deployment
      quietHours: "20:00-07:00"   # asleep at night (wraps midnight) ...
      quietDays: [sat, sun]       # ... and all day at weekends
      timezone: UTC
      graceHours: 1               # a deployment this recent keeps it awake in quiet hours
    development: {idleHours: 24}
    staging: {}                   # never put to sleep automatically

``ENVFORGE_SLEEP_POLICY`` replaces the default: a YAML/JSON file path, or the text itself.
Environments put to sleep by the schedule wake when quiet hours end; those put to sleep for
being idle (or by hand) sleep until someone wakes them or a new commit is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from envforge.errors import ConfigurationError
from envforge.gitops.record import EnvironmentRecord, utc_now
from envforge.settings import load_settings

POLICY_ENV = "ENVFORGE_SLEEP_POLICY"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Reasons the schedule writes; a sleep whose reason starts with SCHEDULE_REASON ends with
#: quiet hours, any other (idle, by hand) lasts until a wake.
SCHEDULE_REASON = "schedule"
IDLE_REASON = "idle"


class TypePolicy(BaseModel):
    """How one environment type sleeps on its own (every field optional: no rule)."""

    model_config = ConfigDict(extra="forbid")

    idleHours: float | None = Field(None, gt=0, description="sleep after this long undeployed")
    quietHours: str | None = Field(None, description="HH:MM-HH:MM asleep every day")
    quietDays: list[str] = Field(default_factory=list, description="days asleep all day")
    timezone: str = "UTC"
    graceHours: float = Field(1.0, ge=0, description="recent deployments stay awake")

    @field_validator("quietHours")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_window(value)
        return value

    @field_validator("quietDays")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        days = [d.strip().lower()[:3] for d in value]
        unknown = [d for d, v in zip(days, value, strict=True) if d not in DAYS]
        if unknown:
            raise ValueError(f"unknown day(s) {unknown}: use {', '.join(DAYS)}")
        return days

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as "
                             "Europe/Berlin)") from None
        return value

    def quiet(self, now: datetime) -> bool:
        """Whether ``now`` falls in this type's quiet hours or days."""
        local = now.astimezone(ZoneInfo(self.timezone))
        if DAYS[local.weekday()] in self.quietDays:
            return True
        if not self.quietHours:
            return False
        start, end = _parse_window(self.quietHours)
        clock = local.time()
        return (start <= clock < end) if start <= end else (clock >= start or clock < end)

    def describe(self) -> str:
        parts = [f"{self.quietHours}" if self.quietHours else "",
                 " ".join(self.quietDays), self.timezone]
        return " ".join(p for p in parts if p)


DEFAULT_POLICY: dict[str, dict[str, Any]] = {
    "preview": {"idleHours": 8, "quietHours": "20:00-07:00", "quietDays": ["sat", "sun"]},
    "development": {"idleHours": 24},
    "staging": {},
}


def _parse_window(text: str) -> tuple[time, time]:
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ValueError(f"quietHours {text!r} is not HH:MM-HH:MM (e.g. 20:00-07:00)") from None
    return start, end


def parse_policy(data: Any, where: str = POLICY_ENV) -> dict[str, TypePolicy]:
    """The policy per environment type; a malformed one is a one-line ConfigurationError."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: the sleep policy must map environment types "
                                 "(preview, development, staging) to rules")
    policy: dict[str, TypePolicy] = {}
    for env_type, rules in data.items():
        if env_type not in DEFAULT_POLICY:
            raise ConfigurationError(f"{where}: unknown environment type {env_type!r}; use "
                                     f"{', '.join(DEFAULT_POLICY)}")
        try:
            policy[env_type] = TypePolicy.model_validate(rules or {})
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(rules)"
            raise ConfigurationError(f"{where}: {env_type}.{field}: {first['msg']}") from None
    return policy


def load_policy(raw: str | None = None) -> dict[str, TypePolicy]:
    """``raw`` (default: ENVFORGE_SLEEP_POLICY), a file path or the YAML/JSON text, else the
    default policy."""
    if raw is None:
        raw = load_settings().lifecycle.sleep_policy
    raw = (raw or "").strip()
    if not raw:
        return parse_policy(DEFAULT_POLICY, "the default sleep policy")
    path = Path(raw)
    text = path.read_text(encoding="utf-8") if "\n" not in raw and path.is_file() else raw
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigurationError(f"{POLICY_ENV}: not YAML or JSON ({e})") from None
    return parse_policy(data)


@dataclass(frozen=True)
class SleepDecision:
    name: str
    action: Literal["sleep", "wake", "keep"]
    reason: str


def decide_sleep(records: list[EnvironmentRecord], policy: dict[str, TypePolicy],
                 now: datetime | None = None) -> list[SleepDecision]:
    """What the scheduled run does with each environment, by its type's policy."""
    now = now or utc_now()
    decisions = []
    for record in sorted(records, key=lambda r: r.name):
        rules = policy.get(record.spec.type)
        sleeping = record.status.sleeping
        since_deploy = now - record.status.lastDeployedAt
        if rules is None:
            decisions.append(SleepDecision(record.name, "keep", "no sleep policy for type "
                                           f"{record.spec.type}"))
        elif sleeping is not None:
            if sleeping.reason.startswith(SCHEDULE_REASON) and not rules.quiet(now):
                decisions.append(SleepDecision(record.name, "wake",
                                               f"{SCHEDULE_REASON}: quiet hours are over"))
            else:
                decisions.append(SleepDecision(record.name, "keep", "asleep"))
        elif rules.quiet(now) and since_deploy >= timedelta(hours=rules.graceHours):
            decisions.append(SleepDecision(record.name, "sleep",
                                           f"{SCHEDULE_REASON}: quiet hours ({rules.describe()})"))
        elif rules.idleHours is not None and since_deploy >= timedelta(hours=rules.idleHours):
            decisions.append(SleepDecision(
                record.name, "sleep", f"{IDLE_REASON}: no deployment for {rules.idleHours:g}h "
                f"(last {record.status.lastDeployedAt.isoformat()})"))
        else:
            decisions.append(SleepDecision(record.name, "keep", "awake and in use"))
    return decisions
