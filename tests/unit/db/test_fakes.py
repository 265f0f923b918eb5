"""Fakes that cannot be real (issue 14): each kind from a space with no real value of its kind,
wide enough that distinct people keep distinct fakes, empty kept empty, the same everywhere."""

from __future__ import annotations

import json
import re

from envforge.db.catalog import Column
from envforge.db.classify import _iban_ok, _luhn_ok
from envforge.db.rules import ColumnRule
from envforge.db.transformers import build_transform, fake_function, scrub_function

KEY = b"unit-test-key-0123456789abcdef"
FICTION_PHONE = re.compile(r"\+1 [2-9][0-8]\d-555-01\d\d x\d{4}")


def text_column(name: str = "c", max_length: int | None = None) -> Column:
    return Column(name=name, type_name="text", base_type="text", category="S", not_null=False,
                  generated=False, max_length=max_length)


def real_phones(n: int) -> list[str]:
    return [f"+1 415 {(g * 7919) % 10_000_000:07d}" for g in range(1, n + 1)]


def test_phones_are_fiction_numbers_and_distinct_people_keep_distinct_numbers() -> None:
    fake = fake_function("phone", KEY)
    inputs = real_phones(20_000)
    outputs = [fake(p) for p in inputs]
    assert all(FICTION_PHONE.fullmatch(o) for o in outputs if o)
    assert len(set(outputs)) >= 19_999  # was 18,129 of 20,000 from a 100,000-number space
    assert not set(outputs) & set(inputs)
    # a real number written differently fakes alike (compared by digits)
    assert fake("+1 (415) 000-7919") == fake("14150007919")


def test_cards_pass_format_checks_and_fail_issuer_checks() -> None:
    fake = fake_function("credit_card", KEY)
    cards = {fake(str(i)) or "" for i in range(5000)}
    assert len(cards) == 5000
    for card in cards:
        assert len(card) == 16 and _luhn_ok(card)
        assert card.startswith("00")  # major industry identifier 0: no issuer


def test_ibans_pass_mod_97_and_name_no_bank() -> None:
    fake = fake_function("iban", KEY)
    ibans = {fake(str(i)) or "" for i in range(5000)}
    assert len(ibans) == 5000
    for iban in ibans:
        assert iban.startswith("DE") and len(iban) == 22 and _iban_ok(iban)
        assert iban[4] == "0"  # German bank codes start with 1-8


def test_emails_ips_usernames_addresses_are_reserved_or_coined() -> None:
    email, ip, user, address, postal = (fake_function(k, KEY) for k in (
        "email", "ip", "username", "address", "postal_code"))
    for i in range(2000):
        assert re.fullmatch(r"[a-z'-]+\.[a-z'-]+\.[0-9a-f]{16}@example\.(com|org|net)",
                            email(f"person{i}@mail.test") or "")
        first = int((ip(f"81.2.{i % 250}.{i // 250}") or "0").split(".")[0])
        assert 240 <= first <= 255
        assert re.fullmatch(r"[a-z'-]+\.[a-z'-]+_[0-9a-f]{12}", user(f"user{i}") or "")
        assert re.fullmatch(r"\d+ [A-Z][a-z]+ [A-Z][a-z]+", address(f"{i} Real Street") or "")
        assert (postal(f"{10000 + i}") or "").startswith("000")
    assert (ip("2a00:1450::1") or "").startswith("2001:db8:")


def test_empty_stays_empty_and_null_stays_null() -> None:
    for kind in ("email", "phone", "address", "full_name", "iban", "credit_card", "text",
                 "hash", "username", "scrub"):
        fn = build_transform(ColumnRule.model_validate({"transform": kind}), text_column(), KEY)
        assert fn is not None and fn("") == "", kind
    assert fake_function("address", KEY)("") == ""


def test_same_input_same_fake_in_columns_json_and_free_text() -> None:
    column = build_transform(ColumnRule(transform="email"), text_column(), KEY)
    in_json = build_transform(ColumnRule(transform="json", keys={"mail": "email"}),
                              Column(name="j", type_name="jsonb", base_type="jsonb",
                                     category="U", not_null=False, generated=False), KEY)
    scrub = scrub_function(KEY)
    assert column is not None and in_json is not None
    for i in range(3000):
        real = f"Person.{i}@Mail.test"
        fake = column(real)
        assert json.loads(in_json(json.dumps({"a": [{"mail": real}]})) or "")["a"][0][
            "mail"] == fake
        assert scrub(f"write to {real} today") == f"write to {fake} today"
        assert fake is not None


def test_scrub_never_rewrites_its_own_output() -> None:
    """A pass per kind rewrote digits inside the fake e-mails of the first pass (29,985 of
    30,000 then no longer matched their account)."""
    scrub, email = scrub_function(KEY), fake_function("email", KEY)
    broken = 0
    for i in range(30_000):
        real = f"user{i}@corp.test"
        out = scrub(f"{real} paid with 4111 1111 1111 1111, call +44 20 7946 0{i % 1000:03d}")
        broken += (email(real) or "") not in (out or "")
    assert broken == 0


def test_fakes_fit_short_columns_and_stay_deterministic() -> None:
    fn = build_transform(ColumnRule(transform="phone"), text_column(max_length=20), KEY)
    assert fn is not None
    out = fn("+1 415 555 1234")
    assert out is not None and len(out) <= 20 and out == fn("+1 415 555 1234")
    other = build_transform(ColumnRule(transform="phone"), text_column(max_length=20),
                            b"another-key-0123456789abcdef")
    assert other is not None and other("+1 415 555 1234") != out


def test_generated_word_lists_equal_fakers() -> None:
    """fake_words_data.py is generated from Faker (python -m envforge.db.names): the fakes must
    keep picking from exactly Faker's lists, in Faker's order."""
    from envforge.db import fake_words_data
    from envforge.db.names import fake_word_lists

    for name, words in fake_word_lists().items():
        assert getattr(fake_words_data, name) == tuple(words), name
