from __future__ import annotations

import pytest

from envforge.db.catalog import Catalog, Column, ForeignKey, Table
from envforge.db.classify import _decide, _embedded_category, _whole_value_category
from envforge.db.copy_values import FieldMemo, FieldRule, decode_text, encode_text, transform_batch
from envforge.db.coverage import resolve_coverage
from envforge.db.rules import ColumnRule, parse_rules
from envforge.db.safety import target_database_name
from envforge.errors import CopyFailedError, RulesError, UnsafeTargetError


def column(name: str, base: str = "text", **kw: object) -> Column:
    category = {"text": "S", "int8": "N", "inet": "I"}.get(base, "S")
    return Column(name=name, type_name=base, base_type=base, category=category,
                  not_null=False, generated=False, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "category"), [
    ("jane.doe@corp.com", "e-mail"), ("+44 20 7946 0958", "phone number"),
    ("123-45-6789", "national id"), ("GB82WEST12345698765432", "IBAN"),
    ("4111 1111 1111 1111", "card number"), ("2001:db8::1", "IP address"),
    ("Olivia Smith", "person name"), ("blue widget", None), ("12345", None),
])
def test_whole_value_detectors(value: str, category: str | None) -> None:
    found = _whole_value_category(value)
    assert (found[0] if found else None) == category


def test_free_text_detection() -> None:
    assert _embedded_category("Please call me on +49 30 1234567, thanks") == "phone number"
    assert _embedded_category("order 4111111111111111 was paid") == "card number"
    assert _embedded_category("order 4111111111111112 was paid") is None  # fails Luhn
    assert _embedded_category("The weather is fine.") is None


def test_decisions_by_name_type_and_content() -> None:
    assert _decide("t", column("email"), {}, []).stops
    assert _decide("t", column("client_ip", "inet"), {}, []).stops
    assert _decide("t", column("notes"), {}, ["call +1 415 555 0100"]).suggestion == "text"
    clear = _decide("t", column("status"), {}, ["paid", "new"])
    assert clear.decision == "clear" and not clear.stops
    assert _decide("t", column("email", unique=True), {}, []).suggestion == "email"


def catalog() -> Catalog:
    users = Table("public", "users", False, [column("id", "int8", unique=True),
                                             column("email", unique=True), column("age", "int8")])
    orders = Table("public", "orders", False, [column("id", "int8"), column("user_email")])
    return Catalog(tables={"public.users": users, "public.orders": orders},
                   foreign_keys=[ForeignKey("orders_fk", "public.orders", ("user_email",),
                                            "public.users", ("email",))], sequences=[])


def test_rule_on_a_key_propagates_to_referencing_columns() -> None:
    coverage = resolve_coverage(parse_rules({"tables": {"users": {"email": "email"}}}),
                                catalog())
    assert coverage["public.orders"]["user_email"].origin.startswith(
        "propagated from public.users.email")


def test_conflicting_rule_on_a_foreign_key_is_refused() -> None:
    rules = parse_rules({"tables": {"users": {"email": "email"},
                                    "orders": {"user_email": {"transform": "hash"}}}})
    with pytest.raises(RulesError, match="references would break"):
        resolve_coverage(rules, catalog())


def test_unknown_names_with_suggestions() -> None:
    rules = parse_rules({"tables": {"user": {"email": "email"}, "users": {"mail": "email"}}})
    with pytest.raises(RulesError) as caught:
        resolve_coverage(rules, catalog())
    assert "did you mean public.users" in str(caught.value)
    assert "public.users.mail: no such column (did you mean email" in str(caught.value)


def test_target_names() -> None:
    assert target_database_name("Feature/Login-42") == "envforge_feature_login_42"
    assert len(target_database_name("x" * 100)) == 63
    with pytest.raises(UnsafeTargetError):
        target_database_name("---")


def test_copy_text_escaping_round_trip() -> None:
    for value in ("plain", "tab\there", "new\nline", "back\\slash", "cr\r"):
        assert decode_text(encode_text(value)) == value
    assert decode_text(b"\\101\\x42") == "AB"


def test_transform_batch_touches_only_covered_columns() -> None:
    field = FieldRule(1, column("email"), ColumnRule(transform="redact", value="X\tY"))
    memo = FieldMemo(lambda v: "X\tY", "public.users", field, "public.users")
    written: list[bytes] = []
    count = transform_batch(b"1\ta@b.c\tkeep\n2\t\\N\tkeep\n", [(1, memo)], written.append, 3)
    assert count == 2
    assert written == [b"1\tX\\tY\tkeep\n2\t\\N\tkeep\n"]


@pytest.mark.parametrize("ncols", [1, 2, 3, 5])
def test_transform_batch_matches_a_row_by_row_reference(ncols: int) -> None:
    lines = [[f"r{r}c{c}".encode() if (r + c) % 4 else b"\\N" for c in range(ncols)]
             for r in range(7)]
    block = b"".join(b"\t".join(line) + b"\n" for line in lines)
    for covered in ({0}, {ncols - 1}, set(range(ncols)), {ncols // 2}):
        memos = []
        for index in sorted(covered):
            field = FieldRule(index, column("c"), ColumnRule(transform="text"))
            memos.append((index, FieldMemo(lambda v: v.upper() + "!", "t", field, "t")))
        written: list[bytes] = []
        assert transform_batch(block, memos, written.append, ncols) == 7
        expected = b"".join(b"\t".join(
            (v if v == b"\\N" or c not in covered else v.upper() + b"!")
            for c, v in enumerate(line)) + b"\n" for line in lines)
        assert written == [expected], (ncols, covered)


def test_high_cardinality_column_loop_matches_the_value_path() -> None:
    from envforge.db.transformers import build_ascii_column, build_transform

    rule = ColumnRule(transform="email")
    field = FieldRule(1, column("email"), rule)
    fn = build_transform(rule, field.column, b"k" * 32)
    assert fn is not None
    values = [b"a@b.c", b"\\N", b"", b"\xc3\xa9@x.fr", b"tab\\there@x.org"] * 3
    block = b"".join(b"%d\t%s\tkeep\n" % (i, v) for i, v in enumerate(values))
    outputs = []
    for loop in (None, build_ascii_column(rule, field.column, b"k" * 32)):
        memo = FieldMemo(fn, "public.users", field, "public.users", loop)
        memo.fills = 2  # as for a unique column: the loop from the first block on
        written: list[bytes] = []
        assert transform_batch(block, [(1, memo)], written.append, 3) == len(values)
        outputs.append(written)
    assert outputs[0] == outputs[1]
    lines = outputs[0][0].split(b"\n")
    assert lines[1] == b"1\t\\N\tkeep" and lines[2] == b"2\t\tkeep"


def test_failing_transform_never_shows_the_value() -> None:
    field = FieldRule(0, column("born"), ColumnRule(transform="noise", days=3))

    def boom(value: str) -> str:
        raise ValueError(f"bad {value}")

    memo = FieldMemo(boom, "public.users", field, "public.users")
    with pytest.raises(CopyFailedError) as caught:
        memo[b"secret-value"]
    assert "secret-value" not in str(caught.value) and "public.users.born" in str(caught.value)


def test_suggestions_fit_type_and_uniqueness() -> None:
    born = Column(name="birth_date", type_name="date", base_type="date", category="D",
                  not_null=False, generated=False)
    assert _decide("t", born, {}, []).suggestion == "date_of_birth"
    # phones are unique-safe now (fiction range with extension, collisions resolved)
    assert _decide("t", column("phone", unique=True), {}, []).suggestion == "phone"
    assert _decide("t", column("city", unique=True), {}, []).suggestion == "hash"
    assert _decide("t", column("card_number", "int8"), {}, []).suggestion == \
        "{transform: noise, ratio: 0.1}"


def test_short_numbers_skipped_by_the_classifier_would_match_no_category() -> None:
    """Values the classifier skips as short numbers (ids, counts, codes): the full checks
    find nothing in any of them, whole or embedded, so skipping them changes no decision."""
    import random

    from envforge.db import classify

    rng = random.Random(26)
    values = [str(n) for n in range(0, 100_000, 7)]
    values += [str(rng.randrange(10 ** (d - 1), 10 ** d)) for d in range(1, 9)
               for _ in range(500)]
    values += ["0" * d for d in range(1, 9)] + ["9" * d for d in range(1, 9)]
    values += ["19216801", "12345678", "20231231", "01234567"]
    for value in values:
        assert classify._short_number(value)
        assert classify._whole_value_category_checked(value) is None, value
        assert classify._embedded_category_checked(value) is None, value
    # anything longer, signed, spaced or not ASCII is checked as before
    for value in ("123456789", "-12", " 12", "12 ", "١٢٣", "+4915112345678", "1.2"):
        assert not classify._short_number(value)
    assert classify._whole_value_category("+49 151 12345678") == ("phone number", "phone")
