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

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from envforge.errors import RulesError

TransformKind = Literal[
    "passthrough", "hash", "email", "first_name", "last_name", "full_name", "phone", "address",
    "city", "iban", "credit_card", "ip", "date_of_birth", "text", "keep_first_char", "mask",
    "partial", "redact", "null", "noise", "regex_replace", "scrub", "json", "username",
    "postal_code",
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
        if self.transform == "regex_replace":
            if not self.pattern:
                raise ValueError("regex_replace needs 'pattern'")
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ValueError(f"regex_replace 'pattern' is not a valid Python regular "
                                 f"expression ({e}); fix the pattern") from None
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
        return expand_shorthand(data)


def expand_shorthand(data: Any) -> Any:
    """``public.users: {email: email}`` means the columns mapping itself, and ``email: email``
    means ``email: {transform: email}``."""
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
    # Column rules that did not parse: kept out of ``tables`` and reported together with the
    # problems only the catalog can show (coverage.resolve_coverage raises with all of them).
    _problems: list[str] = PrivateAttr(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return list(self._problems)

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
    data, column_problems = _split_column_problems(data)
    try:
        rules = Rules.model_validate(data)
    except ValidationError as e:
        raise RulesError(source, column_problems + _problems(e)) from None
    rules._problems = column_problems
    return rules


def _problems(error: ValidationError, prefix: str = "") -> list[str]:
    return [f"{prefix}{'.'.join(str(p) for p in err['loc']) or '(top)'}: "
            f"{err['msg'].removeprefix('Value error, ')}" for err in error.errors()]


def _split_column_problems(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Take out column rules that do not validate (an unknown kind, a bad pattern), with one
    problem each named ``schema.table.column``, so they cannot hide the file's other problems
    (unknown tables or columns, type misfits) that the catalog check lists next to them."""
    tables = data.get("tables")
    if not isinstance(tables, dict):
        return data, []
    problems: list[str] = []
    kept: dict[Any, Any] = {}
    for table_name, table_data in tables.items():
        try:
            table_rules = TableRules.model_validate({} if table_data is None else table_data)
        except ValidationError:
            normalised = expand_shorthand({} if table_data is None else table_data)
            columns = normalised.get("columns") if isinstance(normalised, dict) else None
            if not isinstance(columns, dict):
                kept[table_name] = table_data  # a structural problem: reported as it is
                continue
            good: dict[str, Any] = {}
            for column_name, rule in columns.items():
                try:
                    ColumnRule.model_validate(rule)
                except ValidationError as e:
                    where = f"{qualify(str(table_name))}.{column_name}"
                    problems += [f"{where}: {m}" for m in _column_messages(e)]
                else:
                    good[column_name] = rule
            kept[table_name] = dict(normalised, columns=good)
        else:
            del table_rules
            kept[table_name] = table_data
    return dict(data, tables=kept), problems


def _column_messages(error: ValidationError) -> list[str]:
    out = []
    for err in error.errors():
        field = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "literal_error" and field == "transform":
            message = f"unknown transformer {err['input']!r} ({message})"
        out.append(f"{field}: {message}" if field else message)
    return out


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
