"""Strict mode reads column names by words, not substrings, and finds person names inside
free text (issue 26)."""

from __future__ import annotations

import pytest

from envforge.db.catalog import Column
from envforge.db.classify import _decide, name_hint, name_words
from envforge.db.names import names_in, text_names_found

# Northwind-like employees.notes: each names the employee by first name, some by full name.
NOTES = [
    "Education includes a BA in psychology from Colorado State University in 1970.  She also "
    "completed \"The Art of the Cold Call.\"  Nancy is a member of Toastmasters International.",
    "Andrew received his BTS commercial in 1974 and a Ph.D. in international marketing from "
    "the University of Dallas in 1981.  He is fluent in French and Italian.",
    "Janet has a BS degree in chemistry from Boston College (1984).  She has also completed a "
    "certificate program in food retailing management.",
    "Margaret holds a BA in English literature from Concordia College (1958) and an MA from "
    "the American Institute of Culinary Arts (1966).",
    "Steven Buchanan graduated from St. Andrews University, Scotland, with a BSC degree.",
    "Michael is a graduate of Sussex University (MA, economics, 1983) and the University of "
    "California at Los Angeles (MBA, marketing, 1986).",
    "Robert King served in the Peace Corps and traveled extensively before completing his "
    "degree in English at the University of Michigan in 1992.",
    "Laura received a BA in psychology from the University of Washington.  She has also "
    "completed a course in business French.  She reads and writes French.",
    "Anne has a BA degree in English from St. Lawrence College.  She is fluent in French and "
    "German.",
]
# Pagila-like film descriptions and product blurbs: capitalised words, no people.
DESCRIPTIONS = [
    "A Epic Drama of a Feminist And a Mad Scientist who must Battle a Teacher in The Canadian "
    "Rockies",
    "A Astounding Epistle of a Database Administrator And a Explorer who must Find a Car in "
    "Ancient China",
    "A Touching Reflection of a Crocodile And a Dog who must Chase a Hunter in Ancient China",
    "A Thoughtful Panorama of a Database Administrator And a Mad Scientist who must Outgun a "
    "Mad Scientist in A Jet Boat",
    "A Brilliant Saga of a Student And a Teacher who must Sink a Secret Agent in An Abandoned "
    "Amusement Park",
    "A Intrepid Yarn of a Sumo Wrestler And a Forensic Psychologist who must Battle a "
    "Lumberjack in Soviet Georgia",
    "A Boring Epistle of a Butler And a Cat who must Fight a Pastry Chef in A MySQL Convention",
    "A Taut Tale of a Womanizer And a Waitress who must Meet a Cow in The Gulf of Mexico",
    "Soft drinks, coffees, teas, beers, and ales",
    "Sweet and savory sauces, relishes, spreads, and seasonings",
]


def text_column(name: str) -> Column:
    return Column(name=name, type_name="text", base_type="text", category="S", not_null=False,
                  generated=False)


@pytest.mark.parametrize(("name", "category"), [
    ("ship_address", "address"), ("shipAddress", "address"), ("ship_city", "city"),
    ("ship_postal_code", "postal code"), ("last_login_ip", "IP address"),
    ("ip_addr", "IP address"), ("ipAddress", "IP address"), ("e_mail", "e-mail"),
    ("WorkEmail", "e-mail"), ("homephone", "phone number"), ("FirstName", "first name"),
    ("dateOfBirth", "date of birth"), ("zipcode", "postal code"), ("address2", "address"),
    ("password_hash", "credential (password, hash or token)"),
    ("photo_path", "image or document"), ("middleName", "first name"),
    ("mother_maiden_name", "last name"), ("social_security_number", "national id"),
    ("taxid", "national id"), ("creditcard", "card number"), ("contactname", "name"),
    ("shipper", None), ("hostname", None), ("tip", None), ("span", None), ("hotel", None),
    ("ethnicity", None), ("automobile", None), ("secretary", None), ("stubborn", None),
    ("description", None), ("title_of_courtesy", None),
])
def test_column_names_are_read_by_words(name: str, category: str | None) -> None:
    hint = name_hint(name)
    assert (hint[0] if hint else None) == category


def test_ship_address_is_an_address_and_gets_an_address_rule() -> None:
    decision = _decide("public.orders", text_column("ship_address"), {}, [])
    assert decision.stops and decision.detail == "address (column name)"
    assert decision.suggestion == "address"  # not `ip`, which would fill it with 240.x
    assert name_words("shipAddress2") == ["ship", "address"]


def test_person_names_in_free_text_stop_a_strict_clone() -> None:
    decision = _decide("public.employees", text_column("notes"), {}, NOTES)
    assert decision.stops
    assert "person names" in decision.detail and decision.suggestion == "text"


def test_descriptions_without_people_stay_clear() -> None:
    assert not text_names_found(DESCRIPTIONS)
    decision = _decide("public.film", text_column("description"), {}, DESCRIPTIONS)
    assert not decision.stops, decision.detail


@pytest.mark.parametrize(("text", "strong", "weak"), [
    ("Please call Mrs. Peacock tomorrow", True, True),
    ("Assigned to Andrew Fuller after review", True, True),
    ("Nancy is a member of Toastmasters", False, True),
    ("Shipped in May with the Grace period", False, False),
    ("ANDREW FULLER", False, False),  # upper-case headings are not read as names
])
def test_name_evidence_in_one_text(text: str, strong: bool, weak: bool) -> None:
    assert names_in(text) == (strong, weak)


def test_a_single_mention_is_not_enough_for_a_column() -> None:
    assert not text_names_found(["Hand-made in Leeds by Nancy", "Red and blue stripes",
                                 "Blue and green dots", "Green with a yellow band"])
    assert text_names_found(["please ask Andrew Fuller first", "then see Steven Buchanan",
                             "x"])


def test_short_values_are_left_to_the_whole_value_check() -> None:
    """Artist, company or product names of a few words are not prose: a first name in them
    says nothing about notes (classify's whole-value check judges them, as before)."""
    artists = ["Eric Clapton", "Frank Zappa & Captain Beefheart", "Billy Cobham", "Aerosmith",
               "Antonio Moreno Taqueria", "Alanis Morissette"]
    assert not text_names_found(artists)


def test_names_as_registers_write_them_are_person_names_not_prose() -> None:
    """Titanic's passenger.name (neondatabase/postgres-sample-dbs): "Last, Title First ...".
    Before: "free text containing person names" with the rule `text`, which scrubs words but
    keeps the shape of a name; a name column wants `full_name`."""
    names = ["Braund, Mr. Owen Harris", "Cumings, Mrs. John Bradley (Florence Briggs Thayer)",
             "Heikkinen, Miss. Laina", "Allen, Mr. William Henry", "Moran, Mr. James"] * 4
    decision = _decide("public.passenger", text_column("name"), {}, names)
    assert decision.stops
    assert decision.detail.startswith("person name") and decision.suggestion == "full_name"
    titles = ["The Great British Baking Show", "Blood And Water Season Two",
              "Midnight Mass At The Old Church"] * 7
    assert not _decide("public.shows", text_column("title"), {}, titles).stops


# Free text of a schema of our own (issue 26 re-check): phones as people write them without
# a country code, and e-mails written around spam filters, in a tenth of the notes.
ROUTINE = ["left at the door, no signature needed today", "alles gut heute morgen geliefert",
           "invoice 2024-01-15 paid in full, 1,250.00 on 12/03/2024", "order 12345678 packed",
           "ISBN 0-306-40615-2 reprinted", "driver came at 10:30, total 0.5 kg, room 0.12 m"]


@pytest.mark.parametrize("note", [
    "Customer asked to call back on (555) 867-5309 after six",
    "please ring 555-867-5309 first", "or 555.867.5309 on weekends",
    "Rückruf an 030 12345678 bitte, danke", "call 0171-2345678 later",
    "London office: 020 7946 0958.",
    "reach out via jane(dot)doe(at)example(dot)org", "write to jane [at] example.org today",
])
def test_phones_and_e_mails_inside_free_text_stop_a_strict_clone(note: str) -> None:
    values = ROUTINE * 3 + [note]  # one in nineteen sampled notes
    decision = _decide("public.shipments", text_column("remarks"), {}, values)
    assert decision.stops, decision.detail
    assert ("phone number" in decision.detail or "e-mail" in decision.detail)
    assert decision.suggestion == "text"
    assert note not in decision.detail  # findings never carry a sampled value


def test_dates_amounts_and_references_in_free_text_stay_clear() -> None:
    decision = _decide("public.shipments", text_column("remarks"), {}, ROUTINE * 5)
    assert not decision.stops, decision.detail


def test_a_column_of_national_phone_numbers_is_a_phone_column() -> None:
    values = [f"(555) 867-{n:04d}" for n in range(40)]
    decision = _decide("public.contacts", text_column("reach"), {}, values)
    assert decision.stops and decision.detail.startswith("phone number")
    assert decision.suggestion == "phone"


@pytest.mark.parametrize("name", ["recipient", "tooltip", "skip_reason", "membership",
                                  "equipment", "zipper_size", "ship_via", "clip_url",
                                  "shipping_fee", "township"])
def test_words_that_hold_a_hint_as_letters_are_not_read_as_it(name: str) -> None:
    assert name_hint(name) is None, name


def test_a_float_column_is_not_free_text_with_card_numbers_in_it() -> None:
    """Seen on a test schema: float8 values like 428.5714285714286 were "free text containing
    card number" (15 fraction digits that pass the Luhn check by chance, one in ten)."""
    ratios = [repr(g / 7.0 + 0.0001 * g) for g in range(1, 400)]
    assert any(_embedded_luhn(v) for v in ratios)  # the values that used to stop it
    column = Column("ratio", "double precision", "float8", "N", False, False)
    assert not _decide("public.stats", column, {}, ratios).stops
    # a text column holding the same digits in prose is still free text with card numbers
    notes = [f"paid with {v.replace('.', '')[:16]} yesterday" for v in ratios]
    text_decision = _decide("public.stats", text_column("memo"), {}, notes)
    assert text_decision.stops and "card number" in text_decision.detail


def _embedded_luhn(value: str) -> bool:
    from envforge.db.classify import _embedded_category

    return _embedded_category(value) == "card number"
