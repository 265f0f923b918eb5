"""Strict mode: decide for every column whether it may be copied as it is.

A column without a rule stops the clone when its name, its type or a sample of its content
looks like personal data (e-mails, phones, names, addresses, national ids, IBANs, card
numbers, IPs, dates of birth, or free text / JSON containing any of those). ``passthrough``
marks a column as reviewed. Findings name the column, the evidence and a suggested rule, but
never a sampled value (they end up in logs).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

import psycopg

from envforge.db import fakes
from envforge.db.catalog import Catalog, Column, Table
from envforge.db.connection import quote_ident
from envforge.db.coverage import CoverageMap
from envforge.db.rules import Rules
from envforge.db.transformers import type_class

SAMPLE_ROWS = 200
_NAME_HINTS: list[tuple[str, str, str]] = [  # (regex on column name, category, suggestion)
    (r"e_?mail", "e-mail", "email"),
    (r"phone|mobile|(^|_)tel($|_)|fax|msisdn", "phone number", "phone"),
    (r"first_?name|given_?name|forename", "first name", "first_name"),
    (r"last_?name|surname|family_?name", "last name", "last_name"),
    (r"full_?name|display_?name|contact_?name|customer_?name|person_?name", "name",
     "full_name"),
    (r"ssn|social_?sec|national_?id|passport|tax_?id|(^|_)nino?($|_)|id_?card|driver",
     "national id", "{transform: mask, keep_end: 4}"),
    (r"iban|account_?(no|num)|bank_?acc", "IBAN / account number", "iban"),
    (r"card_?(no|num)|credit_?card|(^|_)pan$|(^|_)cc_?num", "card number", "credit_card"),
    (r"(^|_)ip($|_)|ip_?addr|remote_?addr", "IP address", "ip"),
    (r"birth|(^|_)dob$", "date of birth", "date_of_birth"),
    (r"address|street|(^|_)addr($|_)|post_?code|zip_?code|(^|_)zip$", "address", "address"),
    (r"(^|_)city$|(^|_)town$", "city", "city"),
]
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w.])\+\d[\d ()./-]{7,}\d")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_DIGIT_RUN = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_FIRST_NAMES = frozenset(n.lower() for n in fakes.FIRST_NAMES)
_LAST_NAMES = frozenset(n.lower() for n in fakes.LAST_NAMES)


@dataclass(frozen=True)
class ColumnDecision:
    table: str
    column: str
    type_name: str
    decision: str  # rule | propagated | passthrough | clear | stop | skipped | generated
    detail: str = ""
    suggestion: str | None = None

    @property
    def stops(self) -> bool:
        return self.decision == "stop"


def classify_columns(conn: psycopg.Connection[Any], catalog: Catalog, coverage: CoverageMap,
                     rules: Rules, sample_rows: int = SAMPLE_ROWS) -> list[ColumnDecision]:
    """A decision for every column of every table (reads a sample in the given snapshot)."""
    decisions: list[ColumnDecision] = []
    for name, table in catalog.tables.items():
        table_rules = rules.tables.get(name)
        if table_rules is not None and table_rules.skip:
            decisions += [ColumnDecision(name, c.name, c.type_name, "skipped", "table skipped")
                          for c in table.columns]
            continue
        uncovered = [c for c in table.columns if not c.generated and c.name not in
                     coverage.get(name, {})]
        samples = _sample(conn, table, uncovered, sample_rows)
        for column in table.columns:
            decisions.append(_decide(name, column, coverage, samples.get(column.name, [])))
    return decisions


def stop_findings(decisions: list[ColumnDecision]) -> list[str]:
    return [f"{d.table}.{d.column} looks like {d.detail}; suggested rule: {d.suggestion}"
            for d in decisions if d.stops]


def _decide(table: str, column: Column, coverage: CoverageMap,
            values: list[str]) -> ColumnDecision:
    def make(decision: str, detail: str = "", suggestion: str | None = None) -> ColumnDecision:
        return ColumnDecision(table, column.name, column.type_name, decision, detail, suggestion)

    if column.generated:
        return make("generated", "recomputed by the target from the other columns")
    cov = coverage.get(table, {}).get(column.name)
    if cov is not None:
        if cov.rule.transform == "passthrough":
            return make("passthrough", "reviewed: copied as is")
        return make("rule" if cov.origin == "rule" else "propagated",
                    f"{cov.rule.transform}" + ("" if cov.origin == "rule" else f", {cov.origin}"))
    lowered = column.name.lower()
    tclass = type_class(column)
    for pattern, category, suggestion in _NAME_HINTS:
        if re.search(pattern, lowered):
            return make("stop", f"{category} (column name)",
                        _suggest_for_type(suggestion, column, tclass))
    if tclass == "inet":
        return make("stop", "IP address (column type)", "ip")
    found = _content_category(values, tclass)
    if found is not None:
        category, suggestion = found
        return make("stop", f"{category} ({len(values)} sampled values)",
                    _suggest_for_type(suggestion, column, tclass))
    return make("clear", "no personal data found" + (
        f" in {len(values)} sampled values" if values else ""))


def _suggest_for_type(suggestion: str, column: Column, tclass: str) -> str:
    """Adapt a category's usual rule to what fits the column's type and uniqueness."""
    if tclass in ("int", "number"):
        return "hash" if column.unique else "{transform: noise, ratio: 0.1}"
    if tclass == "timestamp" or (tclass == "date" and suggestion != "date_of_birth"):
        return "{transform: noise, days: 180}"
    if tclass == "inet":
        return "ip"
    if tclass == "json":
        return "{transform: json, keys: {<key>: <transformer>}}"
    if column.unique and suggestion not in ("email", "iban", "hash"):
        return "hash"
    return suggestion


def _content_category(values: list[str], tclass: str) -> tuple[str, str] | None:
    if not values:
        return None
    whole = [_whole_value_category(v) for v in values]
    for category, suggestion in {c for c in whole if c is not None}:
        share = sum(1 for c in whole if c and c[0] == category) / len(values)
        if share >= 0.3:
            return category, suggestion
    embedded = sorted({c for v in values if (c := _embedded_category(v))})
    if embedded:
        kinds = ", ".join(embedded)
        if tclass == "json":
            return f"JSON containing {kinds}", "{transform: json, keys: {<key>: <transformer>}}"
        return f"free text containing {kinds}", "text"
    return None


def _whole_value_category(value: str) -> tuple[str, str] | None:
    v = value.strip()
    if _EMAIL.fullmatch(v):
        return "e-mail", "email"
    if _PHONE.fullmatch(v):
        return "phone number", "phone"
    if _SSN.fullmatch(v):
        return "national id", "{transform: mask, keep_end: 4}"
    if _IBAN.fullmatch(v) and _iban_ok(v):
        return "IBAN", "iban"
    if _DIGIT_RUN.fullmatch(v) and _luhn_ok(v):
        return "card number", "credit_card"
    if _is_ip(v):
        return "IP address", "ip"
    tokens = v.split()
    if 1 <= len(tokens) <= 3 and all(t[:1].isupper() for t in tokens):
        lowered = [t.lower().strip(".,") for t in tokens]
        if any(t in _FIRST_NAMES for t in lowered) or (len(tokens) > 1 and any(
                t in _LAST_NAMES for t in lowered)):
            return "person name", "full_name"
    return None


def _embedded_category(value: str) -> str | None:
    if _EMAIL.search(value):
        return "e-mail"
    if _PHONE.search(value):
        return "phone number"
    if _SSN.search(value):
        return "national id"
    if any(_iban_ok(m.group(0)) for m in _IBAN.finditer(value)):
        return "IBAN"
    if any(_luhn_ok(m.group(0)) for m in _DIGIT_RUN.finditer(value)):
        return "card number"
    if any(_is_ip(m.group(0)) for m in _IPV4.finditer(value)):
        return "IP address"
    return None


def _iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    digits = "".join(str(int(ch, 36)) for ch in s[4:] + s[:4])
    return len(s) >= 15 and digits.isdigit() and int(digits) % 97 == 1


def _luhn_ok(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += (d * 2 - 9 if d > 4 else d * 2) if i % 2 else d
    return total % 10 == 0


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _sample(conn: psycopg.Connection[Any], table: Table, columns: list[Column],
            rows: int) -> dict[str, list[str]]:
    sampled = [c for c in columns if type_class(c) in ("text", "json", "number", "int", "other")]
    if not sampled:
        return {}
    select = ", ".join(f"{quote_ident(c.name)}::text" for c in sampled)
    method = " TABLESAMPLE SYSTEM (5)" if table.size_bytes > 50 * 1024 * 1024 else ""
    with conn.transaction():  # a savepoint, so a failure leaves the snapshot usable
        result = conn.execute(f"SELECT {select} FROM {table.sql}{method} LIMIT {int(rows)}")
        data = result.fetchall()
    return {c.name: [row[i] for row in data if row[i] is not None]
            for i, c in enumerate(sampled)}
