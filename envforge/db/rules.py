"""The anonymisation rules file (YAML): one rule per ``schema.table`` column, plus subsetting.

    version: 1
    strict: true                     # stop on uncovered columns that look like personal data
    tables:
      public.users:
        email: email                 # shorthand for {transform: email}
        ssn: {transform: mask, keep_end: 4}
        salary: {transform: noise, ratio: 0.1}
      audit.events: {skip: true}     # schema only, no rows
    subset:
      start: [{table: public.users, percent: 10}]
      children_limit: 50

The key never lives here: it comes from an AnonymisationKey block or Vault.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from envforge.errors import RulesError

TransformKind = Literal[
    "passthrough", "hash", "email", "first_name", "last_name", "full_name", "phone", "address",
    "city", "iban", "credit_card", "ip", "date_of_birth", "text", "keep_first_char", "mask",
    "partial", "redact", "null", "noise", "regex_replace", "scrub", "json",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnRule(_Strict):
    transform: TransformKind
    length: int | None = Field(None, ge=4, description="hash: hex characters kept")
    keep_start: int = Field(0, ge=0, description="mask/partial: characters kept at the start")
    keep_end: int = Field(0, ge=0, description="mask/partial: characters kept at the end")
    char: str = Field("*", min_length=1, max_length=1, description="mask/partial: mask char")
    value: str | None = Field(None, description="redact: the constant written instead")
    ratio: float | None = Field(None, gt=0, le=1, description="noise: relative bound (numbers)")
    amount: float | None = Field(None, gt=0, description="noise: absolute bound (numbers)")
    days: int | None = Field(None, gt=0, description="noise: bound in days (dates, timestamps)")
    pattern: str | None = Field(None, description="regex_replace: Python regular expression")
    replacement: str = Field("", description="regex_replace: replacement text")
    keys: dict[str, TransformKind] = Field(
        default_factory=dict, description="json: key name -> transformer, anywhere in the doc"
    )

    @model_validator(mode="after")
    def _options_fit(self) -> ColumnRule:
        if self.transform == "regex_replace" and not self.pattern:
            raise ValueError("regex_replace needs 'pattern'")
        if self.transform == "noise" and not (self.ratio or self.amount or self.days):
            raise ValueError("noise needs a bound: 'ratio' or 'amount' (numbers), 'days' (dates)")
        if self.transform == "json" and not self.keys:
            raise ValueError("json needs 'keys' (key name -> transformer)")
        return self


class TableRules(_Strict):
    skip: bool = Field(False, description="copy the table's schema but none of its rows")
    columns: dict[str, ColumnRule] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `public.users: {email: email}` means the columns mapping itself.
        if isinstance(data, dict) and not ({"skip", "columns"} & set(data)):
            data = {"columns": data}
        if isinstance(data, dict) and isinstance(data.get("columns"), dict):
            data = dict(data)
            data["columns"] = {
                k: {"transform": v} if isinstance(v, str) else v
                for k, v in data["columns"].items()
            }
        return data


class SubsetStart(_Strict):
    table: str
    percent: float | None = Field(None, gt=0, le=100)
    where: str | None = None

    @model_validator(mode="after")
    def _one_filter(self) -> SubsetStart:
        if (self.percent is None) == (self.where is None):
            raise ValueError("give exactly one of 'percent' or 'where'")
        return self


class SubsetRules(_Strict):
    start: list[SubsetStart] = Field(min_length=1)
    children_limit: int | None = Field(None, ge=0, description="children per parent row")
    others: Literal["full", "empty"] = Field(
        "full", description="tables not reached from the start tables: copy all rows or none"
    )


class Rules(_Strict):
    version: Literal[1] = 1
    strict: bool = True
    tables: dict[str, TableRules] = Field(default_factory=dict)
    subset: SubsetRules | None = None

    @field_validator("tables", mode="before")
    @classmethod
    def _qualify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {qualify(k): ({} if v is None else v) for k, v in value.items()}
        return value

    def column_rule(self, table: str, column: str) -> ColumnRule | None:
        table_rules = self.tables.get(table)
        return table_rules.columns.get(column) if table_rules else None


def qualify(name: str) -> str:
    """``users`` -> ``public.users``; ``sales.orders`` stays."""
    return name if "." in name else f"public.{name}"


def parse_rules(data: Any, source: str = "rules") -> Rules:
    """Validate a rules mapping; every problem is listed with its path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError(source, ["the rules must be a mapping with 'tables' (and 'subset')"])
    if "key" in data or "anonymisation_key" in data:
        raise RulesError(source, [
            "the anonymisation key must not be in the rules file: remove it and store it in "
            "an AnonymisationKey block (or Vault)"
        ])
    try:
        return Rules.model_validate(data)
    except ValidationError as e:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in e.errors()
        ]
        raise RulesError(source, problems) from None


def load_rules(path: Path | None) -> Rules:
    """Read a rules file; no file means no rules (strict mode then decides what may pass)."""
    if path is None:
        return Rules()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RulesError(str(path), [f"cannot read the rules file: {e.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RulesError(str(path), [f"not valid YAML: {e}"]) from None
    return parse_rules(data, str(path))
