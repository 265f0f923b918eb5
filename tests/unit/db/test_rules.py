from __future__ import annotations

from pathlib import Path

import pytest

from envforge.db.rules import load_rules, parse_rules
from envforge.errors import RulesError


def test_shorthand_and_qualified_names() -> None:
    rules = parse_rules({"tables": {"users": {"email": "email", "age": {"transform": "noise",
                                                                          "amount": 3}},
                                    "audit.events": {"skip": True}}})
    assert rules.column_rule("public.users", "email").transform == "email"  # type: ignore[union-attr]
    assert rules.column_rule("public.users", "age").amount == 3  # type: ignore[union-attr]
    assert rules.tables["audit.events"].skip and rules.strict


def test_every_problem_is_listed_with_its_path() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules({"tables": {"users": {"email": "emails", "ip": {"transform": "noise"}}},
                     "subset": {"start": [{"table": "users"}]}})
    text = str(caught.value)
    assert "public.users.email: transform: unknown transformer 'emails'" in text
    assert "noise needs a bound" in text and "exactly one of 'percent' or 'where'" in text


def test_key_never_in_rules() -> None:
    with pytest.raises(RulesError, match="AnonymisationKey block"):
        parse_rules({"key": "x", "tables": {}})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("tables: [unclosed\n")
    with pytest.raises(RulesError, match=r"rules\.yaml.*not valid YAML"):
        load_rules(bad)
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
    assert load_rules(None).tables == {}
