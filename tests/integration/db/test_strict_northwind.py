"""Strict mode on a Northwind-shaped source, end to end through a real clone: the issue found
person names in ``employees.notes`` passing as ok and ``orders.ship_address`` classed as an IP
address (the `ip` rule then filled it with 240.x addresses). The notes here are written for
this test in Northwind's style (a paragraph per employee naming them)."""

from __future__ import annotations

import pytest

from envforge.db.clone import CloneRequest, clone_database
from envforge.db.connection import ServerAddress
from envforge.db.rules import parse_rules
from envforge.errors import PersonalDataError

from .conftest import TEST_KEY, create_database, database_exists

pytestmark = pytest.mark.postgres

NOTES = [
    "Education includes a BA in psychology. Nancy is a member of Toastmasters International.",
    "Andrew received his BTS commercial and a Ph.D. in international marketing. He is fluent "
    "in French and Italian and reads German.",
    "Janet has a BS degree in chemistry from a college in Boston. She completed a certificate "
    "program in food retailing management.",
    "Margaret holds a BA in English literature and was the head of sales before she joined.",
    "Steven Buchanan graduated in 1976 and spent six months in an orientation program at the "
    "Seattle office before he returned to London.",
    "Michael is a graduate of Sussex University and has completed a course in business.",
    "Robert King served in the Peace Corps and travelled before completing his degree.",
    "Laura received a BA in psychology and has also completed a course in business French.",
    "Anne has a BA degree in English. She is fluent in French and German.",
]

NORTHWIND_LIKE = """
CREATE TABLE employees (employee_id smallint PRIMARY KEY, last_name text NOT NULL,
    first_name text NOT NULL, title text, notes text);
CREATE TABLE orders (order_id smallint PRIMARY KEY, employee_id smallint REFERENCES employees,
    ship_name text, ship_address text, ship_city text, ship_postal_code text,
    ship_country text);
""" + "".join(
    f"INSERT INTO employees VALUES ({i + 1}, 'Last{i}', 'First{i}', 'Sales Representative', "
    f"'{note}');\n" for i, note in enumerate(NOTES)) + """
INSERT INTO orders SELECT g, 1 + g % 9, 'Trading Co ' || g, g || ' Obere Str.', 'Berlin',
    lpad((12200 + g)::text, 5, '0'), 'Germany' FROM generate_series(1, 200) g;
"""

# Everything else reviewed, so only the two columns of the issue are left to strict mode.
RULES = {"strict": True, "tables": {
    "public.employees": {"last_name": "last_name", "first_name": "first_name",
                         "title": "passthrough"},
    "public.orders": {"ship_name": "passthrough", "ship_city": "city",
                      "ship_postal_code": "postal_code", "ship_country": "passthrough"}}}


def test_strict_clone_stops_on_names_in_notes_and_reads_ship_address_as_an_address(
        pg_server: ServerAddress) -> None:
    source = create_database(pg_server, "northwind_like", NORTHWIND_LIKE)
    target = source.with_database("envforge_northwind_strict")
    with pytest.raises(PersonalDataError) as stopped:
        clone_database(CloneRequest(source, target, parse_rules(RULES), TEST_KEY))
    message = str(stopped.value)
    assert "public.employees.notes looks like free text containing person names" in message
    assert "public.orders.ship_address looks like address (column name); suggested rule: " \
           "address" in message
    assert "IP address" not in message
    assert not database_exists(pg_server, target.dbname)  # refused before anything was made
