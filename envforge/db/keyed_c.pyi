"""Types of the compiled column loops (keyed_c.c); see envforge/db/keyed_loops.py."""

class ColumnLoop:
    """A column of plain ASCII values -> their e-mail, phone or hash fakes."""

    def __init__(self, kind: str, sub_key: bytes, tables: tuple[tuple[bytes, ...], ...] = (),
                 length: int = 64, limit: int | None = None) -> None: ...
    def __call__(self, values: list[bytes], /) -> list[bytes]: ...

def keyed_blake2b(key: bytes, message: bytes, /) -> bytes:
    """32-byte BLAKE2b digest of message under key (0 to 64 bytes)."""
