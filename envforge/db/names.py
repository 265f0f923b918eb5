"""Person names inside free text, for strict mode (``classify``).

The dictionaries are Faker's first and last names of many locales, minus words that are common
English words or places (a name that is also a word, such as *May* or *Georgia*, says nothing).
They are generated once into :mod:`envforge.db.person_names_data` (``python -m
envforge.db.names``), because importing twenty Faker locales costs about 0.3 s and every
strict clone would pay it.

Evidence in one text: a title and a capitalised word (``Mrs. Peacock``), a first name followed
by a capitalised last name (``Andrew Fuller``), or a first name alone (``Nancy is a member``).
A column's sample is decided in :func:`text_names_found`.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from pathlib import Path

LOCALES = ("en_US", "en_GB", "en_IE", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR",
           "pt_PT", "pl_PL", "sv_SE", "da_DK", "no_NO", "fi_FI", "cs_CZ", "ro_RO", "hu_HU",
           "tr_TR", "id_ID")
# Names that are also everyday English words or places; Faker's lorem list has the rest.
_NOT_NAMES_TEXT = """
will may mark bill guy rose hope joy grace faith summer june april august art jack frank sue
pat don rich dean earl king major page price young long white brown green black gray grey
hunter baker miller cook smith carter chase hall hill lane park ray rob sky star storm sunny
rocky dusty misty honey ivy holly heather daisy iris lily violet ruby pearl amber crystal jade
autumn dawn eve winter christian angel bishop cardinal pope queen prince duke baron lord
china india england france germany spain italy holland jordan georgia virginia carolina
paris florence victoria sydney austin dallas houston phoenix denver madison lincoln
washington jackson orlando chester kent essex devon york berlin vienna lima santiago
monday tuesday wednesday thursday friday saturday sunday january february march july
september october november december easter christmas
"""
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "herr",
                     "frau", "mme", "mlle", "sra", "sr", "sig"})
_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ'-]*\.?")


@lru_cache(maxsize=1)
def name_lists() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(first names, last names, first names that are also lower-case dictionary words such
    as *john* or *saga*: they count next to a last name, not alone), lower case."""
    from envforge.db.person_names_data import FIRST, LAST, WORDLIKE

    return frozenset(FIRST.split()), frozenset(LAST.split()), frozenset(WORDLIKE.split())


def names_in(text: str) -> tuple[bool, bool]:
    """(strong, weak) evidence of a person's name in ``text``: strong is a title or a first
    and last name together, weak a first name alone (capitalised, not upper case)."""
    first, last, wordlike = name_lists()
    words = _WORD.findall(text)
    weak = False
    for i, word in enumerate(words):
        bare = word.rstrip(".")
        if not bare[:1].isupper() or bare.isupper():
            continue
        lowered = bare.lower()
        following = words[i + 1].rstrip(".") if i + 1 < len(words) else ""
        capital_next = following[:1].isupper() and not following.isupper()
        if lowered in _TITLES and capital_next:
            return True, True
        if lowered in first:
            if capital_next and following.lower().split("'")[0] in last:
                return True, True
            weak = weak or lowered not in wordlike
    return False, weak


_PROSE_WORDS = 4  # shorter values (titles, artist or company names) are whole values, judged
# by classify's whole-value check as they were before


def text_names_found(values: list[str]) -> bool:
    """Whether a column's sampled texts (those of four words or more) hold person names:
    strong evidence in two of them (or a tenth), or a first name in a third of them (as every
    note about an employee names the employee)."""
    prose = [v for v in values if len(v.split()) >= _PROSE_WORDS]
    if not prose:
        return False
    strong = weak = 0
    for value in prose:
        s, w = names_in(value)
        strong += s
        weak += w
    return strong >= min(2, len(prose)) or strong >= 0.1 * len(prose) > 1 or (
        weak >= max(2, 0.3 * len(prose)))


_DICTIONARY = Path("/usr/share/dict/words")  # Debian's wamerican, when installed


def build_name_lists() -> tuple[list[str], list[str], list[str]]:
    """Faker's first and last names of :data:`LOCALES`, without English words and places, and
    the first names that are lower-case words of the system dictionary (when there is one)."""
    import importlib

    from faker.providers.address.en_US import Provider as Address
    from faker.providers.lorem.en_US import Provider as Lorem

    words = {w.lower() for w in Lorem.word_list} | _NOT_NAMES
    places = {p.lower() for group in (Address.states, Address.countries)
              for item in group for p in item.split()}
    first: set[str] = set()
    last: set[str] = set()
    for locale in LOCALES:
        person = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female"):
            first |= {n.lower() for n in getattr(person, attr, ()) or ()}
        last |= {n.lower() for n in getattr(person, "last_names", ()) or ()}

    def keep(name: str) -> bool:
        return len(name) >= 3 and name.isalpha() and name not in words and name not in places

    dictionary: set[str] = set()
    if _DICTIONARY.is_file():
        dictionary = {w.strip() for w in _DICTIONARY.read_text(encoding="utf-8").splitlines()
                      if w.strip().isalpha() and w.strip().islower()}
    firsts = sorted(n for n in first if keep(n))
    return firsts, sorted(n for n in last if keep(n)), [n for n in firsts if n in dictionary]


def write_data_module(path: Path) -> None:
    first, last, wordlike = build_name_lists()

    def block(names: list[str]) -> str:
        lines: list[str] = []
        for name in names:
            if lines and len(lines[-1]) + len(name) < 95:
                lines[-1] += " " + name
            else:
                lines.append(name)
        return "\n".join(lines)

    path.write_text(
        '"""Generated by `python -m envforge.db.names` from Faker\'s person names of '
        f'{len(LOCALES)}\nlocales; do not edit."""\n# ruff: noqa: RUF001\n\n'
        f'FIRST = """\n{block(first)}\n"""\n\nLAST = """\n{block(last)}\n"""\n\n'
        f'WORDLIKE = """\n{block(wordlike)}\n"""\n', encoding="utf-8")


def fake_word_lists() -> dict[str, list[str]]:
    """The Faker (en_US) word lists :mod:`envforge.db.fakes` picks from, in Faker's order."""
    from faker.providers.address.en_US import Provider as Address
    from faker.providers.lorem.en_US import Provider as Lorem
    from faker.providers.person.en_US import Provider as Person

    return {"FIRST_NAMES": list(dict.fromkeys(Person.first_names)),
            "LAST_NAMES": list(dict.fromkeys(Person.last_names)),
            "STREET_SUFFIXES": list(Address.street_suffixes),
            "CITY_SUFFIXES": list(Address.city_suffixes),
            "WORDS": list(Lorem.word_list)}


def write_fake_words_module(path: Path) -> None:
    """The lists as tuples of literals: importing Faker itself costs 0.1-0.15 s (its locale
    scan) in every clone process and copy worker; the fakes only need these words."""
    lines = ['"""Generated by `python -m envforge.db.names` from Faker\'s en_US lists (the '
             'words\nenvforge.db.fakes picks from); do not edit."""', ""]
    for name, words in fake_word_lists().items():
        lines.append(f"{name}: tuple[str, ...] = (")
        line = "   "
        for word in words:
            item = f" {word!r},"
            if len(line) + len(item) > 99:
                lines.append(line)
                line = "   "
            line += item
        lines += [line, ")", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    for target, write in ((Path(__file__).with_name("person_names_data.py"), write_data_module),
                          (Path(__file__).with_name("fake_words_data.py"),
                           write_fake_words_module)):
        write(target)
        print(f"wrote {target}", file=sys.stderr)
