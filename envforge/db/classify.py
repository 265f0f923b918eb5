"""Strict mode: decide for every column whether it may be copied as it is.

A column without a rule stops the clone when its name, its type or a sample of its content
looks like personal data (e-mails, phones, names, addresses, national ids, IBANs, card
numbers, IPs, dates of birth, or free text / JSON containing any of those). ``passthrough``
marks a column as reviewed. Findings name the column, the evidence and a suggested rule, but
never a sampled value (they end up in logs).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import yaml
from psycopg import sql

from envforge.db import fakes
from envforge.db.catalog import Catalog, Column, Table
from envforge.db.coverage import CoverageMap
from envforge.db.identifiers import identifier
from envforge.db.names import names_in, text_names_found
from envforge.db.rules import ColumnRule, Rules
from envforge.db.transformers import fit_problem, type_class

SAMPLE_ROWS = 200
# What a column's name says, matched on its words (snake_case and camelCase split, trailing
# digits dropped), never on substrings: `ship_address` is an address, not an IP address.
# (phrases, category, suggestion, embedded): a phrase matches consecutive words, or one word
# that is the phrase run together (`firstname`, `e_mail`); `embedded` phrases also match at
# the start or end of a longer word (`homephone`, `birthdate`, `workemail`).
_NAME_HINTS: list[tuple[tuple[str, ...], str, str, bool]] = [
    (("password", "passwd", "pass hash", "api key", "access key", "private key"),
     "credential (password, hash or token)", "hash", True),
    (("pwd", "secret", "token", "salt", "otp", "session id", "session key"),
     "credential (password, hash or token)", "hash", False),
    (("ssn", "social security", "national id", "passport", "tax id", "nino", "nin", "id card",
      "driver license", "drivers license", "driving licence"),
     "national id", "{transform: mask, keep_end: 4}", False),
    (("iban", "account no", "account number", "account num", "bank account"),
     "IBAN / account number", "iban", False),
    (("card no", "card number", "card num", "credit card", "pan", "cc num", "cc number"),
     "card number", "credit_card", False),
    (("ip", "ip address", "ip addr", "remote addr", "ipv4", "ipv6"), "IP address", "ip",
     False),
    (("email", "e mail"), "e-mail", "email", True),
    (("phone",), "phone number", "phone", True),
    (("mobile", "tel", "fax", "msisdn"), "phone number", "phone", False),
    (("first name", "given name", "forename", "fname", "middle name"), "first name",
     "first_name", True),
    (("last name", "surname", "family name", "lname", "maiden name"), "last name", "last_name",
     True),
    (("full name", "display name", "contact name", "customer name", "person name",
      "employee name"), "name", "full_name", True),
    (("user name", "login", "nick name", "screen name", "handle"), "username", "username",
     False),
    (("birth",), "date of birth", "date_of_birth", True),
    (("dob", "born"), "date of birth", "date_of_birth", False),
    (("post code", "postal", "zip code", "zip"), "postal code", "postal_code", True),
    (("address", "street", "addr"), "address", "address", True),
    (("city", "town"), "city", "city", False),
    (("picture", "photo", "image", "avatar", "thumbnail", "portrait", "attachment",
      "signature"), "image or document", "null", True),
    (("scan", "document", "file", "blob", "pdf"), "image or document", "null", False),
]


def name_words(column: str) -> list[str]:
    """``shipAddress2`` / ``ship_address2`` -> ``['ship', 'address']``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", column).lower()
    return [w.rstrip("0123456789") for w in re.split(r"[^a-z0-9]+", spaced)
            if w.rstrip("0123456789")]


def name_hint(column: str) -> tuple[str, str] | None:
    """(category, suggestion) that a column's name alone indicates, else None."""
    words = name_words(column)
    runs = {"".join(words[i:j]) for i in range(len(words))
            for j in range(i + 1, min(i + 4, len(words) + 1))}
    for phrases, category, suggestion, embedded in _NAME_HINTS:
        for phrase in phrases:
            joined = phrase.replace(" ", "")
            if joined in runs or (embedded and len(joined) >= 4 and any(
                    w != joined and (w.startswith(joined) or w.endswith(joined))
                    for w in words)):
                return category, suggestion
    return None


# Binary content worth stopping for: images and documents (file signatures, as bytea hex).
_FILE_MAGIC = {"89504e47": "PNG image", "ffd8ff": "JPEG image", "47494638": "GIF image",
               "25504446": "PDF document", "49492a00": "TIFF image", "4d4d002a": "TIFF image",
               "504b0304": "ZIP/Office document", "52494646": "RIFF (WebP/WAV) file",
               "d0cf11e0": "Office document"}
_CREDENTIAL = re.compile(r"\$(2[abxy]?|argon2(id|i|d)|pbkdf2[\w-]*|scrypt|[156])\$\S{8,}"
                         r"|(sha1|sha256|md5|bcrypt)[$:]\S{16,}|[0-9a-f]{32}|[0-9a-f]{40}"
                         r"|[0-9a-f]{64}|[0-9a-f]{128}", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w.])\+\d[\d ()./-]{7,}\d")
# Phones as people write them without the country code: North American ``(555) 867-5309``,
# ``555-867-5309`` or ``555.867.5309``, and national numbers with a trunk 0 (``030 12345678``,
# ``0171-2345678``, ``020 7946 0958``): digit groups split by a space, dash, dot or slash, 9-12
# digits in all (checked in _national_phone), so dates, times and amounts do not match.
_NATIONAL_PHONE = re.compile(
    r"(?<![\w.,/-])(?:\(\d{3}\) ?\d{3}[-. ]\d{4}|\d{3}([-.])\d{3}\1\d{4}"
    r"|0\d{1,4}[ /-]\d{2,8}(?:[ -]\d{2,5}){0,2})(?![\w/-]|[.,]\d)")
# Addresses written around spam filters: ``jane(at)example(dot)org``, ``jane [at] example.org``
_OBFUSCATED_EMAIL = re.compile(r"[\w.+-]+ ?[(\[{]at[)\]}] ?[\w-]+(?: ?(?:[(\[{]dot[)\]}]|\.) ?"
                               r"[\w-]+)+", re.IGNORECASE)
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_DIGIT_RUN = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_DIGIT = re.compile(r"\d")
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
    # Where the suggested rule goes when not on this column: the column a foreign key of this
    # one references (the rule is propagated from there).
    suggest_on: tuple[str, str] | None = None

    @property
    def stops(self) -> bool:
        return self.decision == "stop"


def classify_columns(conn: psycopg.Connection[Any], catalog: Catalog, coverage: CoverageMap,
                     rules: Rules, sample_rows: int = SAMPLE_ROWS) -> list[ColumnDecision]:
    """A decision for every column of every table (reads a sample in the given snapshot)."""
    decisions: list[ColumnDecision] = []
    keys = _key_columns(catalog)
    skipped = {name for name in catalog.tables
               if (t := rules.tables.get(name)) is not None and t.skip}
    all_samples = _sample_tables(conn, [
        (table, [c for c in table.columns if not c.generated and c.name not in
                 coverage.get(name, {})])
        for name, table in catalog.tables.items() if name not in skipped], sample_rows)
    for name, table in catalog.tables.items():
        if name in skipped:
            decisions += [ColumnDecision(name, c.name, c.type_name, "skipped", "table skipped")
                          for c in table.columns]
            continue
        samples = all_samples.get(name, {})
        for column in table.columns:
            decisions.append(_decide(name, column, coverage, samples.get(column.name, []),
                                     (name, column.name) in keys))
    return _place_suggestions(decisions, catalog)


def _key_columns(catalog: Catalog) -> set[tuple[str, str]]:
    """Columns of primary keys and of either end of a foreign key."""
    keys = {(name, c) for name, t in catalog.tables.items() for c in t.primary_key}
    for fk in catalog.foreign_keys:
        keys |= {(fk.child, c) for c in fk.child_columns}
        keys |= {(fk.parent, c) for c in fk.parent_columns}
    return keys


def _place_suggestions(decisions: list[ColumnDecision],
                       catalog: Catalog) -> list[ColumnDecision]:
    """Make every suggestion one that a clone accepts as it is: it fits the column's type,
    nullability and uniqueness, and a foreign-key column gets no rule of its own (its rule
    goes on the referenced column and is propagated, so references stay valid)."""
    by_column = {(d.table, d.column): d for d in decisions}
    parent_of: dict[tuple[str, str], tuple[str, str, str]] = {}
    for fk in catalog.foreign_keys:
        for child_col, parent_col in zip(fk.child_columns, fk.parent_columns, strict=True):
            parent_of.setdefault((fk.child, child_col), (fk.parent, parent_col, fk.name))
    out: list[ColumnDecision] = []
    for d in decisions:
        if not d.stops or d.suggestion is None:
            out.append(d)
            continue
        here = (d.table, d.column)
        seen = {here}
        while here in parent_of and parent_of[here][:2] not in seen:  # bounded by `seen`
            here = parent_of[here][:2]
            seen.add(here)
        if here != (d.table, d.column):
            parent = by_column.get(here)
            column = catalog.tables[here[0]].column(here[1])
            suggestion = parent.suggestion if parent is not None and parent.stops and \
                parent.suggestion else (_fitting(d.suggestion, column) if column else "hash")
            out.append(replace(d, suggestion=suggestion, suggest_on=here))
            continue
        column = catalog.tables[d.table].column(d.column)
        out.append(replace(d, suggestion=_fitting(d.suggestion, column) if column else
                           d.suggestion))
    return out


def _fitting(suggestion: str, column: Column) -> str:
    """``suggestion`` if a clone accepts it on ``column``, else the first that fits of hash,
    null and a typed redact."""
    for candidate in (suggestion, "hash", NULL_RULE):
        if _rule_fits(candidate, column):
            return candidate
    return "{transform: redact, value: " + _REDACT_VALUES.get(
        type_class(column), "''") + "}"


# As written in a rules file: a bare `null` would be YAML's null, not the transformer.
NULL_RULE = "{transform: 'null'}"
_REDACT_VALUES = {"int": "'0'", "number": "'0'", "date": "'1970-01-01'",
                  "timestamp": "'1970-01-01 00:00:00'", "inet": "'240.0.0.1'",
                  "uuid": "'00000000-0000-0000-0000-000000000000'", "bool": "'false'",
                  "other": "''"}


def _rule_fits(suggestion: str, column: Column) -> bool:
    try:
        data = yaml.safe_load(suggestion) if suggestion.startswith("{") else suggestion
        rule = ColumnRule.model_validate({"transform": data} if isinstance(data, str) else data)
    except (yaml.YAMLError, ValueError):  # a placeholder such as <key> does not parse
        return False
    return fit_problem(rule, column) is None


def stop_findings(decisions: list[ColumnDecision]) -> list[str]:
    return [f"{d.table}.{d.column} looks like {d.detail}; suggested rule: "
            + (f"{d.suggestion} on {'.'.join(d.suggest_on)} (referenced by this column; it is "
               "propagated)" if d.suggest_on else f"{d.suggestion}")
            for d in decisions if d.stops]


def _decide(table: str, column: Column, coverage: CoverageMap,
            values: list[str], is_key: bool = False) -> ColumnDecision:
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
    tclass = type_class(column)
    # Flags, enums and surrogate keys hold no personal data whatever they are called
    # (address_id, email_verified, address_type).
    names_matter = tclass not in ("bool", "enum") and not (
        tclass in ("int", "uuid") and (is_key or re.search(r"(^|_)id$|[a-z]Id$", column.name)))
    hint = name_hint(column.name) if names_matter else None
    if hint is not None:
        category, suggestion = hint
        return make("stop", f"{category} (column name)",
                    _suggest_for_type(suggestion, column, tclass, values))
    if tclass == "inet":
        return make("stop", "IP address (column type)", "ip")
    if column.base_type == "bytea":
        kind = _file_kind(values)
        if kind:
            return make("stop", f"{kind} ({len(values)} sampled values)",
                        _suggest_for_type("null", column, tclass, values))
        return make("clear", "binary data, no image or document signature found" + (
            f" in {len(values)} sampled values" if values else ""))
    if tclass == "date" and _birth_dates(values):
        return make("stop", f"date of birth ({len(values)} sampled values: ages 14-100)",
                    "date_of_birth")
    found = _content_category(values, tclass)
    if found is not None:
        category, suggestion = found
        return make("stop", f"{category} ({len(values)} sampled values)",
                    _suggest_for_type(suggestion, column, tclass, values))
    return make("clear", "no personal data found" + (
        f" in {len(values)} sampled values" if values else ""))


def _suggest_for_type(suggestion: str, column: Column, tclass: str,
                      values: list[str] | None = None) -> str:
    """Adapt a category's usual rule to what fits the column's type and uniqueness."""
    if tclass in ("int", "number"):
        return "hash" if column.unique else "{transform: noise, ratio: 0.1}"
    if tclass == "timestamp" or (tclass == "date" and suggestion != "date_of_birth"):
        return "{transform: noise, days: 180}"
    if tclass == "inet":
        return "ip"
    if tclass == "json":
        return _json_suggestion(values or [])
    if column.base_type == "bytea" or suggestion == "null":
        return NULL_RULE if not column.not_null else "{transform: redact, value: '\\x'}"
    if column.unique and suggestion not in ("email", "iban", "hash", "phone", "credit_card",
                                            "username"):
        return "hash"
    return suggestion


_KIND_OF_CATEGORY = {"e-mail": "email", "phone number": "phone", "IBAN": "iban",
                     "card number": "credit_card", "IP address": "ip", "person name":
                     "full_name", "national id": "hash"}


def _json_suggestion(values: list[str]) -> str:
    """A json rule naming the keys whose values look personal in the sample, else redact."""
    keys: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, (dict, list)):
                    walk(v)
                elif isinstance(v, str | int) and not isinstance(v, bool):
                    found = _whole_value_category(str(v))
                    if found is not None or _embedded_category(str(v)):
                        kind = _KIND_OF_CATEGORY.get(found[0], "text") if found else "scrub"
                        keys.setdefault(str(k), kind)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for value in values:
        try:
            walk(json.loads(value))
        except ValueError:
            continue
    if not keys or any(not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) for k in keys):
        return "redact"
    return "{transform: json, keys: {" + ", ".join(f"{k}: {v}" for k, v in
                                                    sorted(keys.items())) + "}}"


def _file_kind(values: list[str]) -> str | None:
    for value in values:
        hexa = value[2:10].lower() if value.startswith("\\x") else ""
        for magic, kind in _FILE_MAGIC.items():
            if hexa.startswith(magic):
                return kind
    return None


def _birth_dates(values: list[str]) -> bool:
    """Dates that look like birthdays: nearly all 14 to 100 years ago, spread over decades."""
    if len(values) < 10:
        return False
    today = dt.date.today()
    years = []
    for value in values:
        try:
            day = dt.date.fromisoformat(value[:10])
        except ValueError:
            continue
        age = (today - day).days / 365.25
        if 14 <= age <= 100:
            years.append(day.year)
    return len(years) >= 0.9 * len(values) and max(years) - min(years) >= 15


# Type classes whose values can hold free text with personal data in it (arrays and other
# types are "other"); numbers, dates, uuids and the like can only be one value as a whole.
_MAY_HOLD_TEXT = frozenset({"text", "json", "other"})


def _content_category(values: list[str], tclass: str) -> tuple[str, str] | None:
    if not values:
        return None
    distinct = set(values)  # each value checked once (ids, codes and dates repeat)
    found = {v: _whole_value_category(v) for v in distinct}
    whole = [found[v] for v in values]
    for category, suggestion in {c for c in whole if c is not None}:
        share = sum(1 for c in whole if c and c[0] == category) / len(values)
        if share >= 0.3:
            return category, suggestion
    if tclass not in _MAY_HOLD_TEXT:  # a float's fraction digits are no card number
        return None
    embedded = sorted({c for v in distinct if (c := _embedded_category(v))})
    if tclass in ("text", "json") and text_names_found(values):
        embedded.append("person names")
    if embedded:
        kinds = ", ".join(embedded)
        if tclass == "json":
            return f"JSON containing {kinds}", "{transform: json, keys: {<key>: <transformer>}}"
        return f"free text containing {kinds}", "text"
    return None


def _short_number(value: str) -> bool:
    """An ASCII integer of at most 8 digits (ids, counts, codes: most sampled values): no
    category can match it (a phone number has 9 digits or more, a card 13, an IP dots, a
    national id dashes, every other category letters or symbols), so it is not checked."""
    return len(value) <= 8 and value.isascii() and value.isdigit()


def _whole_value_category(value: str) -> tuple[str, str] | None:
    v = value.strip()
    if _short_number(v):
        return None
    return _whole_value_category_checked(v)


def _whole_value_category_checked(v: str) -> tuple[str, str] | None:
    if "@" in v and _EMAIL.fullmatch(v):
        return "e-mail", "email"
    if _DIGIT.search(v):  # phones, ids, IBANs, cards and IPs all hold digits; most text none
        if _PHONE.fullmatch(v) or _national_phone(v, whole=True):
            return "phone number", "phone"
        if _SSN.fullmatch(v):
            return "national id", "{transform: mask, keep_end: 4}"
        if _IBAN.fullmatch(v) and _iban_ok(v):
            return "IBAN", "iban"
        if _DIGIT_RUN.fullmatch(v) and _luhn_ok(v):
            return "card number", "credit_card"
    if _is_ip(v):
        return "IP address", "ip"
    if _CREDENTIAL.fullmatch(v):
        return "password hash or token", "hash"
    tokens = v.split()
    if 1 <= len(tokens) <= 3 and all(t[:1].isupper() for t in tokens):
        lowered = [t.lower().strip(".,") for t in tokens]
        if any(t in _FIRST_NAMES for t in lowered) or (len(tokens) > 1 and any(
                t in _LAST_NAMES for t in lowered)):
            return "person name", "full_name"
    # Longer names, as registers write them: "Braund, Mr. Owen Harris", "Cumings, Mrs. John
    # Bradley (Florence Briggs Thayer)": every word capitalised, and a title or a first and
    # last name among them.
    if 4 <= len(tokens) <= 8 and all(t.lstrip("(")[:1].isupper() for t in tokens) \
            and names_in(v)[0]:
        return "person name", "full_name"
    return None


def _embedded_category(value: str) -> str | None:
    if _short_number(value):
        return None
    return _embedded_category_checked(value)


def _embedded_category_checked(value: str) -> str | None:
    if "@" in value and _EMAIL.search(value):
        return "e-mail"
    if ("at" in value or "AT" in value) and _OBFUSCATED_EMAIL.search(value):
        return "e-mail"
    if not _DIGIT.search(value):  # what follows needs digits
        return None
    if _PHONE.search(value) or _national_phone(value):
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


def _national_phone(text: str, *, whole: bool = False) -> bool:
    """A phone number without its country code in ``text`` (the whole of it: ``whole``)."""
    matches = [_NATIONAL_PHONE.fullmatch(text.strip())] if whole else \
        list(_NATIONAL_PHONE.finditer(text))
    return any(m is not None and 9 <= sum(ch.isdigit() for ch in m.group(0)) <= 12
               for m in matches)


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


_IP_SHAPE = re.compile(r"[0-9.]{7,15}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*")


def _is_ip(text: str) -> bool:
    if not _IP_SHAPE.fullmatch(text):  # most values: no parse attempt (and no exception)
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _sample_tables(conn: psycopg.Connection[Any], tables: list[tuple[Table, list[Column]]],
                   rows: int) -> dict[str, dict[str, list[str]]]:
    """A sample of ``rows`` rows of the given columns of each table: table -> column ->
    values. Every table's query is sent at once (psycopg's pipeline mode), so a schema of many
    tables costs one round trip instead of three per table (a query and its savepoint), which
    on a busy machine is each a wait for the server to be scheduled."""
    planned: list[tuple[str, list[Column], sql.Composed]] = []
    for table, columns in tables:
        sampled = [c for c in columns if type_class(c) in ("text", "json", "number", "int",
                                                            "other", "date")]
        if not sampled:
            continue
        # Only the first bytes of binary columns: enough for a file signature, cheap on images.
        select = sql.SQL(", ").join(
            sql.SQL("substring({} from 1 for 8)::text" if c.base_type == "bytea"
                    else "{}::text").format(identifier(c.name)) for c in sampled)
        method = sql.SQL(" TABLESAMPLE SYSTEM (5)" if table.size_bytes > 50 * 1024 * 1024
                         else "")
        planned.append((table.qualified, sampled, sql.SQL("SELECT {} FROM {}{} LIMIT {}").format(
            select, table.ident, method, sql.Literal(int(rows)))))
    if not planned:
        return {}
    with conn.transaction():  # a savepoint, so a failure leaves the snapshot usable
        cursors = [conn.cursor() for _ in planned]
        with conn.pipeline():
            for cursor, (_, _, query) in zip(cursors, planned, strict=True):
                cursor.execute(query)
        results = [cursor.fetchall() for cursor in cursors]
    return {name: {c.name: [row[i] for row in data if row[i] is not None]
                   for i, c in enumerate(sampled)}
            for (name, sampled, _), data in zip(planned, results, strict=True)}
