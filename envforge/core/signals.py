"""SIGTERM as an exception, for a stretch of work that must clean up on the way out.

A cancelled flow run, a service manager or ``kill`` sends SIGTERM; its default action ends the
process at once, leaving what it began (a half-made database, a temporary folder, a child
process) behind. Inside :func:`sigterm_raises` the signal raises an exception instead, so
``finally`` blocks and context managers run. Standard library only: the CLI sets it before it
imports anything heavy.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def sigterm_raises(make: Callable[[], BaseException]) -> Iterator[None]:
    """SIGTERM raises ``make()`` inside the block; the previous handler is put back after.
    Main thread only (elsewhere Python cannot set a handler, and the default stays)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        raise make()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
