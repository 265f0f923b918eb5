from __future__ import annotations

import datetime as dt

from envforge.db import fakes
from envforge.db.catalog import Column
from envforge.db.classify import _iban_ok, _luhn_ok
from envforge.db.rules import ColumnRule
from envforge.db.transformers import Keyed, build_transform, fake_function, fit_problem

KEY, OTHER = b"k" * 32, b"o" * 32


def col(base: str = "text", category: str = "S", **kw: object) -> Column:
    return Column(name="c", type_name=base, base_type=base, category=category,
                  not_null=bool(kw.pop("not_null", False)), generated=False, **kw)  # type: ignore[arg-type]


def rule(kind: str, **kw: object) -> ColumnRule:
    return ColumnRule.model_validate({"transform": kind, **kw})


def test_keyed_digest_is_standard_keyed_blake2b_under_an_hmac_subkey() -> None:
    import hashlib
    import hmac

    subkey = hmac.digest(KEY, b"email", "sha256")
    assert Keyed(KEY, "email").digest("a@b.c") == hashlib.blake2b(
        b"a@b.c", key=subkey, digest_size=32).digest()


def test_deterministic_per_key_and_consistent_across_columns() -> None:
    email = build_transform(rule("email"), col(), KEY)
    assert email is not None
    assert email("Jane.Doe@corp.com") == email("jane.doe@corp.com ")  # normalised
    assert email("jane.doe@corp.com") != build_transform(rule("email"), col(), OTHER)(  # type: ignore[misc]
        "jane.doe@corp.com")
    assert fake_function("email", KEY)("jane.doe@corp.com") == email("jane.doe@corp.com")
    assert email("x@y.z").endswith(("@example.com", "@example.org", "@example.net"))


def test_fakes_are_valid_identifiers() -> None:
    digest = Keyed(KEY, "t").digest("v")
    assert _iban_ok(fakes.iban(digest)) and _luhn_ok(fakes.credit_card(digest))
    assert dt.date(1940, 1, 1) <= dt.date.fromisoformat(fakes.date_of_birth(digest)) \
        <= dt.date(2005, 12, 31)
    assert 240 <= int(fakes.ip_address(digest).split(".")[0]) <= 255
    assert fakes.ip_address(digest, v6=True).startswith("2001:db8:")


def test_noise_is_bounded_and_keeps_the_type() -> None:
    days = build_transform(rule("noise", days=10), col("date", "D"), KEY)
    ints = build_transform(rule("noise", ratio=0.1), col("int4", "N"), KEY)
    money = build_transform(rule("noise", amount=5), col("numeric", "N"), KEY)
    assert days and ints and money
    for i in range(200):
        day = dt.date(2020, 1, 1) + dt.timedelta(days=i)
        shifted = dt.date.fromisoformat(days(day.isoformat()) or "")
        assert 1 <= abs((shifted - day).days) <= 10
        assert abs(int(ints(str(1000 + i)) or 0) - (1000 + i)) <= (1000 + i) * 0.1 + 1
        out = money(f"{i}.25") or ""
        assert len(out.split(".")[1]) == 2 and abs(float(out) - (i + 0.25)) <= 5
    assert days("infinity") == "infinity"
    assert days("2020-01-01 10:00:00+00").endswith(" 10:00:00+00")


def test_masks_hash_redact_null_json() -> None:
    assert build_transform(rule("mask", keep_end=4), col(), KEY)("123-45-6789") == "*******6789"  # type: ignore[misc]
    assert build_transform(rule("keep_first_char"), col(), KEY)("Smith") == "S****"  # type: ignore[misc]
    assert len(build_transform(rule("hash", length=12), col(), KEY)("x") or "") == 12  # type: ignore[misc]
    as_int = build_transform(rule("hash"), col("int8", "N"), KEY)
    assert as_int and 0 < int(as_int("42") or 0) < 2**63
    assert build_transform(rule("redact"), col(), KEY)("secret") == "REDACTED"  # type: ignore[misc]
    assert build_transform(rule("null"), col(), KEY)("x") is None  # type: ignore[misc]
    doc = build_transform(rule("json", keys={"email": "email"}), col("jsonb", "U"), KEY)
    assert doc is not None
    out = doc('{"email": "a@b.c", "n": [{"email": "a@b.c"}], "keep": 1}') or ""
    assert "a@b.c" not in out and '"keep": 1' in out
    assert build_transform(rule("passthrough"), col(), KEY) is None


def test_varchar_length_is_respected() -> None:
    fn = build_transform(rule("email"), col("varchar", max_length=10), KEY)
    assert fn and len(fn("someone@somewhere.org") or "") == 10


def test_fit_problems() -> None:
    assert "does not fit type int4" in (fit_problem(rule("email"), col("int4", "N")) or "")
    assert "NOT NULL" in (fit_problem(rule("null"), col(not_null=True)) or "")
    assert "unique" in (fit_problem(rule("first_name"), col(unique=True)) or "")
    assert "needs an explicit 'value'" in (fit_problem(rule("redact"), col("int4", "N")) or "")
    assert fit_problem(rule("email"), col(unique=True)) is None
    assert fit_problem(rule("hash"), col("int4", "N", unique=True)) is not None


def test_scrub_replaces_pii_inside_text() -> None:
    scrub = build_transform(rule("scrub"), col(), KEY)
    assert scrub is not None
    text = "Mail jane@corp.com or call +1 415 555 0100 from 192.168.1.20, IBAN GB82WEST12345698765432"
    out = scrub(text) or ""
    for raw in ("jane@corp.com", "+1 415 555 0100", "192.168.1.20", "GB82WEST12345698765432"):
        assert raw not in out
    assert out.startswith("Mail ")


def test_column_loops_give_the_slow_paths_fakes() -> None:
    from envforge.db.copy_values import decode_text, encode_text
    from envforge.db.transformers import build_ascii_column

    values = ["Jane.Doe@x.org ", "+1 (415) 555-0100", "plain", "", " ", "émile@x.fr",
              "tab\tinside", "back\\slash", "5551234"] + [f"user{i}@mail.test" for i in range(300)]
    raw = [encode_text(v) for v in values] + [b"\\N"]
    for kind, limit in (("email", None), ("phone", None), ("hash", None), ("email", 12),
                        ("hash", 1)):
        column = col(max_length=limit)
        slow = build_transform(rule(kind), column, KEY)
        loop = build_ascii_column(rule(kind), column, KEY)
        assert slow is not None and loop is not None
        others: list[bytes] = []

        def other(value: bytes, _slow=slow, _others=others) -> bytes:  # type: ignore[no-untyped-def]
            _others.append(value)
            if value == b"\\N":
                return value
            out = _slow(decode_text(value))
            return b"\\N" if out is None else encode_text(out)

        expected = [encode_text(slow(v) or "") for v in values] + [b"\\N"]
        assert loop(raw, other) == expected, kind
        plain = [i for i, v in enumerate(values) if v and v.isascii() and "\t" not in v
                 and "\\" not in v]  # a block of plain values only: no check per value
        assert loop([raw[i] for i in plain], other) == [expected[i] for i in plain]
        assert b"" not in others  # empty stays empty without the slow path
        assert set(others) == {encode_text(v) for v in values if not v.isascii() or "\t" in v
                               or "\\" in v} | {b"\\N"}


def test_ascii_fast_path_gives_the_same_fakes() -> None:
    from envforge.db.transformers import build_ascii_fast_path

    for kind in ("email", "phone", "hash"):
        slow = build_transform(rule(kind), col(), KEY)
        fast = build_ascii_fast_path(rule(kind), col(), KEY)
        assert slow is not None and fast is not None
        for value in ("Jane.Doe@x.org ", "+1 (415) 555-0100", "plain"):
            assert (slow(value) or "").encode() == fast(value.encode())
