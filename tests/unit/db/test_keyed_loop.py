"""The compiled column loops (envforge/db/keyed_c.c) give exactly what the Python loops give.

The extension is imported unconditionally: CI builds it (gcc is there), so a build that broke
fails here instead of the clone silently running the slow loop.
"""

from __future__ import annotations

import gc
import hashlib
import os
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from envforge.db import fakes, keyed_c, keyed_loops
from envforge.db.catalog import Column
from envforge.db.rules import ColumnRule
from envforge.db.transformers import Keyed, build_ascii_column, build_transform, sub_key

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
KINDS = ("email", "phone", "hash")
LIMITS = (None, 1, 5, 12, 25, 40, 64, 300)
sub_keys = st.binary(min_size=32, max_size=32)
limits = st.sampled_from(LIMITS)
hash_lengths = st.integers(min_value=4, max_value=80)  # rules allow >= 4; 64 hex at most

# What a COPY column of plain values can hold: printable ASCII but the backslash, tabs and
# line ends escaped away (kept here anyway: the loops must agree on any bytes).
_PLAIN = (string.ascii_letters + string.digits + string.punctuation.replace("\\", "") + " ")
emails = st.builds(
    lambda pre, local, domain, post: f"{pre}{local}@{domain}{post}".encode(),
    st.text(" \t\n\r\x0b\x0c", max_size=3),
    st.text(string.ascii_letters + string.digits + "._+-", min_size=1, max_size=40),
    st.text(string.ascii_letters + string.digits + ".-", min_size=1, max_size=200),
    st.text(" \t\n\r\x0b\x0c", max_size=3))
phones = st.text("0123456789" * 3 + " ()+-./x#ext", min_size=1, max_size=300).map(str.encode)
plain = st.text(_PLAIN, min_size=1, max_size=300).map(str.encode)
any_bytes = st.binary(max_size=300)
columns = st.lists(st.one_of(emails, phones, plain, any_bytes), max_size=40)


def both(kind: str, key: bytes, length: int = 32,
         limit: int | None = None) -> tuple[keyed_loops.Loop, keyed_loops.Loop]:
    return (keyed_loops.compiled_loop(kind, key, length, limit),
            keyed_loops.python_loop(kind, key, length, limit))


def test_the_extension_is_built_and_chosen() -> None:
    assert keyed_loops.COMPILED
    loop = keyed_loops.column_loop("email", b"k" * 32, 32, None)
    assert isinstance(loop, keyed_c.ColumnLoop)


@FUZZ
@given(key=st.binary(max_size=64), message=any_bytes)
@example(key=b"", message=b"")
@example(key=b"k" * 64, message=b"")
@example(key=b"k", message=b"m" * 128)
def test_blake2b_is_rfc_7693_keyed_blake2b(key: bytes, message: bytes) -> None:
    assert keyed_c.keyed_blake2b(key, message) == hashlib.blake2b(
        message, key=key, digest_size=32).digest()


@pytest.mark.parametrize("size", [0, 1, 111, 112, 127, 128, 129, 255, 256, 257, 1000, 4096])
def test_blake2b_at_block_edges(size: int) -> None:
    message = os.urandom(size)
    for key in (b"", os.urandom(1), os.urandom(32), os.urandom(64)):
        assert keyed_c.keyed_blake2b(key, message) == hashlib.blake2b(
            message, key=key, digest_size=32).digest()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("limit", LIMITS)
def test_values_of_every_length_up_to_three_blocks(kind: str, limit: int | None) -> None:
    # Each kind normalises differently (e-mail strips and lowers, phone keeps digits), so the
    # values are built to stay that long after normalising: 127/128/129 and 255/256/257 bytes
    # reach the digest, where the block boundaries are.
    values = [(b"Ab9" * 130)[:n] if kind != "phone" else (b"4155550100" * 40)[:n]
              for n in range(1, 390)]
    values += [b" \t" + v + b"\r\n" for v in values[120:135]]
    compiled, python = both(kind, os.urandom(32), 40, limit)
    assert compiled(values) == python(values)


@pytest.mark.parametrize("kind", KINDS)
def test_values_hashed_in_lanes_and_alone_keep_their_places(kind: str) -> None:
    # Values of 1-128 normalised bytes are hashed several at a time in vector lanes, empty and
    # longer ones one at a time: interleaved, in every count up to three batches, each fake
    # must land at its own value's index.
    compiled, python = both(kind, b"lanes key, thirty-two bytes long", 32, None)
    for count in range(30):
        values = [b"8" * 200 if i % 3 == 0 else b"" if i % 7 == 1 else
                  f" {i}-555-0{i} Mail@Host{i}.Example ".encode() for i in range(count)]
        assert compiled(values) == python(values), count


@FUZZ
@given(key=sub_keys, values=st.lists(st.one_of(emails, any_bytes), max_size=40), limit=limits)
def test_email_loop_equals_the_python_loop(key: bytes, values: list[bytes],
                                           limit: int | None) -> None:
    compiled, python = both("email", key, limit=limit)
    assert compiled(values) == python(values)


@FUZZ
@given(key=sub_keys, values=st.lists(st.one_of(phones, any_bytes), max_size=40), limit=limits)
def test_phone_loop_equals_the_python_loop(key: bytes, values: list[bytes],
                                           limit: int | None) -> None:
    compiled, python = both("phone", key, limit=limit)
    assert compiled(values) == python(values)


@FUZZ
@given(key=sub_keys, values=columns, length=hash_lengths, limit=limits)
def test_hash_loop_equals_the_python_loop(key: bytes, values: list[bytes], length: int,
                                          limit: int | None) -> None:
    compiled, python = both("hash", key, length, limit)
    assert compiled(values) == python(values)


def test_normalised_alike_values_get_one_fake() -> None:
    # as the slow path: ' Jane.DOE@X.org\n' and 'jane.doe@x.org' are one address, '+1 (415)
    # 555-0100' and '14155550100' one number
    email, phone = (keyed_loops.compiled_loop(k, b"s" * 32, 32, None) for k in ("email", "phone"))
    a, b = email([b" Jane.DOE@X.org\n", b"jane.doe@x.org"])
    assert a == b and a.endswith((b"@example.com", b"@example.org", b"@example.net"))
    c, d = phone([b"+1 (415) 555-0100", b"14155550100"])
    assert c == d and c.startswith(b"+1 ")
    assert email([b"x@y.z"]) != keyed_loops.compiled_loop("email", b"t" * 32, 32, None)(
        [b"x@y.z"])


def column(max_length: int | None = None) -> Column:
    return Column(name="c", type_name="text", base_type="text", category="S", not_null=False,
                  generated=False, max_length=max_length)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("limit", [None, 7])
def test_column_transform_gives_the_slow_paths_fakes(kind: str, limit: int | None) -> None:
    # build_ascii_column (compiled loop) against build_transform (one value at a time, str)
    key = b"anonymisation key of this test!!"
    rule = ColumnRule.model_validate({"transform": kind, "length": 20} if kind == "hash"
                                     else {"transform": kind})
    slow = build_transform(rule, column(limit), key)
    loop = build_ascii_column(rule, column(limit), key)
    assert slow is not None and loop is not None
    values = [f" User{i}.Name@Mail{i % 7}.TEST " if kind == "email" else f"+1 (415) 555-{i:04d}"
              for i in range(500)] + ["x" * 300]

    def refuse(raw: bytes) -> bytes:
        raise AssertionError(f"{raw!r} left the column loop")

    assert loop([v.encode() for v in values], refuse) == [(slow(v) or "").encode()
                                                        for v in values]


@pytest.mark.parametrize("kind", KINDS)
def test_the_loops_key_is_the_keyed_digests_key(kind: str) -> None:
    key = os.urandom(32)
    assert keyed_c.keyed_blake2b(sub_key(key, kind), b"v@w.x") == \
        Keyed(key, kind).digest("v@w.x")


def test_tables_are_kept_alive_by_the_loop() -> None:
    firsts = tuple(bytes(x) for x in fakes.EMAIL_FIRSTS)  # fresh objects only the loop holds
    tables = (firsts, tuple(bytes(x) for x in fakes.EMAIL_LASTS),
              tuple(bytes(x) for x in fakes.EMAIL_AT_DOMAINS))
    loop = keyed_c.ColumnLoop("email", b"k" * 32, tables, 64, None)
    expected = keyed_loops.python_loop("email", b"k" * 32, 64, None)([b"a@b.c"] * 3)
    del firsts, tables
    gc.collect()
    assert loop([b"a@b.c"] * 3) == expected


def test_wrong_arguments_raise_instead_of_crashing() -> None:
    key, tables = b"k" * 32, keyed_loops._tables("email")
    loop = keyed_c.ColumnLoop("email", key, tables)
    for values in ((b"a@b.c",), b"a@b.c", None, [b"a@b.c", "x@y.z"], [b"ok", None]):
        with pytest.raises(TypeError):
            loop(values)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        loop([b"a"], [b"b"])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        loop(values=[b"a"])  # type: ignore[call-arg]
    bad_constructions: list[tuple[type[Exception], tuple[object, ...], dict[str, object]]] = [
        (TypeError, (b"email", key, tables), {}),
        (TypeError, ("email", "k" * 32, tables), {}),
        (TypeError, ("email", key, [list(t) for t in tables]), {}),
        (TypeError, ("email", key, (tables[0], tables[1], ("@x",))), {}),
        (TypeError, ("email", key, (tables[0], tables[1], [b"@x"])), {}),
        (TypeError, ("email", key, tables, "32"), {}),
        (TypeError, ("email", key, tables, 32, "7"), {}),
        (TypeError, ("email", key, tables), {"colour": 1}),
        (TypeError, (), {}),
        (ValueError, ("name", key, tables), {}),
        (ValueError, ("hash", key, tables), {}),
        (ValueError, ("email", key, ()), {}),
        (ValueError, ("email", key, (tables[0], tables[1], ())), {}),
        (ValueError, ("email", b"", tables), {}),
        (ValueError, ("email", b"k" * 65, tables), {}),
        (ValueError, ("hash", key, (), -1), {}),
        (ValueError, ("hash", key, (), 32, -1), {}),
        (OverflowError, ("hash", key, (), 32, 2**70), {}),
    ]
    for error, args, kwargs in bad_constructions:
        with pytest.raises(error):
            keyed_c.ColumnLoop(*args, **kwargs)  # type: ignore[arg-type]
    for args in (("k", b"m"), (b"k", "m"), (b"k",)):
        with pytest.raises(TypeError):
            keyed_c.keyed_blake2b(*args)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        keyed_c.keyed_blake2b(b"k" * 65, b"m")
    assert loop([]) == []
