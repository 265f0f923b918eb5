"""The budget every author-written expression and skeleton render runs under.

Two layers, because neither alone is enough:

* size pre-checks in the sandbox (:mod:`envforge.templating.sandbox`) refuse the operations
  that would spend their time or memory inside one C call, where nothing can interrupt them:
  ``10 ** 10 ** 10``, ``'a' * 10 ** 9``, ``range(10 ** 9)``, ``'{:>999999999}'.format(1)``;
* a wall-clock :func:`deadline` interrupts everything else (nested loops, long chains of small
  operations) by raising :class:`BudgetExceeded` inside the rendering thread. It works in any
  thread (Prefect runs tasks in worker threads, where SIGALRM cannot be used): a watchdog timer
  injects the exception with ``PyThreadState_SetAsyncExc``, which Python delivers at the next
  bytecode boundary of the rendering thread.

Settings (environment variables, read through envforge.settings when an engine is made):

    ENVFORGE_RENDER_TIMEOUT_S      seconds per expression or skeleton file (default 5)
    ENVFORGE_RENDER_MAX_CHARS      largest text one render may produce (default 5,000,000)
    ENVFORGE_RENDER_MAX_ITEMS      largest range/list/repetition (default 100,000)
    ENVFORGE_TEMPLATE_MAX_BYTES    largest template.yaml (default 1 MiB)
    ENVFORGE_VALUES_MAX_BYTES      largest --values file or value set (default 1 MiB)
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from envforge.settings import load_settings


class BudgetExceeded(Exception):
    """Raised inside a render that ran out of its budget; never reaches a user as is: the
    expression engine and fetch:template turn it into an ExpressionError naming the place."""


@dataclass(frozen=True)
class Budget:
    seconds: float = 5.0
    max_chars: int = 5_000_000
    max_items: int = 100_000
    #: the largest integer an expression may build, in bits (a 1,000-digit number is ~3,300)
    max_int_bits: int = 4096
    #: the largest width or precision in a format spec (``{:>N}``, ``%Nd``, ``center(N)``)
    max_width: int = 10_000
    template_max_bytes: int = 1 << 20
    values_max_bytes: int = 1 << 20
    #: YAML: the most nodes a document may expand to (aliases counted at every use)
    yaml_max_nodes: int = 100_000
    yaml_max_aliases: int = 1_000
    yaml_max_depth: int = 100


def load_budget() -> Budget:
    """The budget from the settings' render section (envforge.settings reads the variables
    above), defaults for what is not set."""
    render = load_settings().render
    return Budget(seconds=render.timeout_seconds, max_chars=render.max_chars,
                  max_items=render.max_items, template_max_bytes=render.template_max_bytes,
                  values_max_bytes=render.values_max_bytes)


# Prototypes of their own (not ctypes.pythonapi's shared attribute): one passes the exception
# class, the other NULL, which clears a pending exception. PYFUNCTYPE keeps the GIL held.
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi))
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi))
_local = threading.local()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`BudgetExceeded` in this thread if the block runs longer than ``seconds``.

    Nested deadlines keep the outer (earliest) one: an expression inside a skeleton render
    does not get a fresh budget. The watchdog fires at most once and only while the block is
    active (a lock guards the hand-over); a pending exception is cleared on the way out, so it
    never lands in the caller's code after the block ended.
    """
    if getattr(_local, "active", False):
        yield
        return
    ident = threading.get_ident()
    lock = threading.Lock()
    state = {"active": True, "fired": False}

    def fire() -> None:
        with lock:
            if state["active"]:
                state["fired"] = True
                _set_async_exc(ident, BudgetExceeded)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    _local.active = True
    try:
        timer.start()
        yield
    finally:
        while True:  # the one injected exception may arrive here: catch it and finish up
            try:
                with lock:
                    state["active"] = False
                    if state["fired"]:
                        _clear_async_exc(ident, None)
                break
            except BudgetExceeded:
                continue
        timer.cancel()
        _local.active = False
        if state["fired"]:
            raise BudgetExceeded(f"took longer than {seconds:g} s")
