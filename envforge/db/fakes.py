"""Deterministic fake values: each is a pure function of a keyed digest of the real value.

The digest (keyed BLAKE2b under the anonymisation key, see ``transformers.Keyed``) picks words
from Faker's English lists and digits, so the same input and key always give the same fake, a
different key gives a different one, and no Faker instance (slow, stateful) is used per row.
"""

from __future__ import annotations

import datetime as dt
import random

# Faker's en_US lists, generated into a module of literals (importing Faker costs every clone
# process 0.1-0.15 s); tests/unit/db/test_fakes.py checks they still equal Faker's.
from envforge.db.fake_words_data import CITY_SUFFIXES as CITY_SUFFIXES
from envforge.db.fake_words_data import FIRST_NAMES as FIRST_NAMES
from envforge.db.fake_words_data import LAST_NAMES as LAST_NAMES
from envforge.db.fake_words_data import STREET_SUFFIXES as STREET_SUFFIXES
from envforge.db.fake_words_data import WORDS as WORDS

_STREET_WORDS: tuple[str, ...] = tuple(w.capitalize() for w in WORDS if len(w) >= 4)
# Reserved for documentation and examples (RFC 2606): fakes never reach a real mailbox.
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


def _pick(words: tuple[str, ...], digest: bytes, offset: int) -> str:
    return words[int.from_bytes(digest[offset : offset + 2], "big") % len(words)]


def _number(digest: bytes, offset: int, digits: int) -> str:
    value = int.from_bytes(digest[offset : offset + 8], "big") % (10**digits)
    return str(value).zfill(digits)


def first_name(d: bytes) -> str:
    return _pick(FIRST_NAMES, d, 0)


def last_name(d: bytes) -> str:
    return _pick(LAST_NAMES, d, 2)


def full_name(d: bytes) -> str:
    return f"{first_name(d)} {last_name(d)}"


_FIRST_LOWER = tuple(n.lower() for n in FIRST_NAMES)
_LAST_LOWER = tuple(n.lower() for n in LAST_NAMES)
_NAME_PAIRS = len(_FIRST_LOWER) * len(_LAST_LOWER)


def email(d: bytes) -> str:
    # 64 bits of tag keep a unique column's collisions negligible (expected < 1e-7 at 1 M
    # rows) and are the same in every column, so joins on an e-mail still match.
    n = int.from_bytes(d[:8], "big")
    first, last = divmod(n % _NAME_PAIRS, len(_LAST_LOWER))
    domain = EMAIL_DOMAINS[(n >> 40) % 3]
    return f"{_FIRST_LOWER[first]}.{_LAST_LOWER[last]}.{d[8:16].hex()}@{domain}"


# NANP area codes of the form NXX (N = 2-9, middle digit not 9) that are not N11 service codes.
_AREA_CODES: tuple[int, ...] = tuple(n for n in range(200, 1000)
                                     if (n // 10) % 10 != 9 and n % 100 != 11)


_PHONE_PREFIXES: tuple[str, ...] = tuple(f"+1 {area}-555-01" for area in _AREA_CODES)
_TWO_DIGITS: tuple[str, ...] = tuple(f"{i:02d}" for i in range(100))
_EXTENSIONS: tuple[str, ...] = tuple(f" x{i:04d}" for i in range(10_000))


def phone(d: bytes) -> str:
    """``+1 NPA-555-01XX xNNNN``: 555-0100 to 555-0199 are reserved for fiction in every NANP
    area code (NANPA), so the number reaches nobody; the extension widens the space to about
    7e8 values (unique columns stay unique, distinct people keep distinct numbers). Built
    from precomputed pieces: this runs once per row."""
    return (_PHONE_PREFIXES[int.from_bytes(d[6:10], "big") % len(_PHONE_PREFIXES)]
            + _TWO_DIGITS[d[10] % 100] + _EXTENSIONS[int.from_bytes(d[11:14], "big") % 10_000])


# Bytes twins of the e-mail and phone pieces, for the copy path's column loops
# (transformers.build_ascii_column), which build a whole column's fakes in one loop without a
# call per value; tests check they give exactly what email() and phone() give.
EMAIL_FIRSTS: tuple[bytes, ...] = tuple(f"{n}.".encode() for n in _FIRST_LOWER)
EMAIL_LASTS: tuple[bytes, ...] = tuple(f"{n}.".encode() for n in _LAST_LOWER)
EMAIL_AT_DOMAINS: tuple[bytes, ...] = tuple(f"@{d}".encode() for d in EMAIL_DOMAINS)
PHONE_PREFIXES: tuple[bytes, ...] = tuple(p.encode() for p in _PHONE_PREFIXES)
PHONE_TWO_DIGITS: tuple[bytes, ...] = tuple(p.encode() for p in _TWO_DIGITS)
PHONE_EXTENSIONS: tuple[bytes, ...] = tuple(p.encode() for p in _EXTENSIONS)


def address(d: bytes) -> str:
    """A coined street (two English words run together, e.g. "Ablenight") with a house
    number: no real street is named so, and the digest spreads values over about 1e11."""
    house = int.from_bytes(d[6:8], "big") % 9999 + 1
    first = _pick(_STREET_WORDS, d, 8)
    second = _pick(_STREET_WORDS, d, 10).lower()
    return f"{house} {first}{second} {_pick(STREET_SUFFIXES, d, 12)}"


def city(d: bytes) -> str:
    return f"{_pick(LAST_NAMES, d, 12)}{_pick(CITY_SUFFIXES, d, 14)}"


def postal_code(d: bytes) -> str:
    """``000NN``: US ZIP codes starting 000 are not assigned to any area."""
    return f"000{int.from_bytes(d[0:2], 'big') % 100:02d}"


def username(d: bytes) -> str:
    """``first.last_<12 hex>`` from the digest: unique in practice (48-bit tag), never a
    person's real handle unless it happens to carry the same random tag."""
    n = int.from_bytes(d[:8], "big")
    first, last = divmod(n % _NAME_PAIRS, len(_LAST_LOWER))
    return f"{_FIRST_LOWER[first]}.{_LAST_LOWER[last]}_{d[8:14].hex()}"


def iban(d: bytes) -> str:
    """A German-format IBAN with a valid mod-97 check (format validators accept it) whose bank
    code (BLZ) starts with 0: German bank codes start with 1-8, so no bank holds it."""
    bban = "0" + _number(d, 4, 17)
    numeric = bban + "131400"  # "DE" -> 13 14, then "00" as placeholder check digits
    check = 98 - int(numeric) % 97
    return f"DE{check:02d}{bban}"


def credit_card(d: bytes) -> str:
    """16 digits with a valid Luhn digit (format checks pass) starting with 00: major
    industry identifier 0 is assigned to no card issuer, so issuer checks fail."""
    body = "00" + _number(d, 4, 13)
    total = 0
    for i, ch in enumerate(reversed(body)):
        n = int(ch)
        if i % 2 == 0:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return body + str((10 - total % 10) % 10)


def ip_address(d: bytes, v6: bool = False) -> str:
    """IPv4 in 240.0.0.0/4 (reserved, never assigned to a host; 255.255.255.255 avoided) or
    IPv6 in 2001:db8::/32 (documentation prefix)."""
    if v6:
        return "2001:db8:" + ":".join(d[i : i + 2].hex() for i in range(0, 12, 2))
    return f"{240 + (d[0] & 0x0F)}.{d[1]}.{d[2]}.{d[3] if d[3] != 255 else 254}"


def date_of_birth(d: bytes) -> str:
    start = dt.date(1940, 1, 1).toordinal()
    span = dt.date(2005, 12, 31).toordinal() - start
    return dt.date.fromordinal(start + int.from_bytes(d[0:4], "big") % span).isoformat()


def text(d: bytes, length: int) -> str:
    """Lorem words about as long as the original (free text with personal data in it)."""
    rng = random.Random(d)
    words: list[str] = []
    size = 0
    target = max(length, 1)
    while size < target:
        word = WORDS[rng.randrange(len(WORDS))]
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:target].rstrip() or WORDS[0]


FAKERS = {
    "first_name": first_name,
    "last_name": last_name,
    "full_name": full_name,
    "address": address,
    "city": city,
    "iban": iban,
    "credit_card": credit_card,
    "date_of_birth": date_of_birth,
    "postal_code": postal_code,
    "username": username,
}
