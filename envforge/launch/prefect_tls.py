"""One verified TLS context for all of Prefect's API clients in a process.

Prefect 3.8 builds a new ``ssl.create_default_context(cafile=<CA bundle>)`` for every API
client it makes (``prefect.client.orchestration``), every events websocket and every server
version check: OpenSSL 3 parses the whole CA bundle each time, about 14 ms of CPU here. A
flow run makes dozens of clients (one per tag-concurrency lease service, log and events
worker, deployment step, ...) and the process worker a few per flow run it starts: in
bench/fleet.py's profile a fifth of the engines' CPU and a quarter of the worker's went to
building these contexts, though the demo's API is plain HTTP on 127.0.0.1.

:func:`share_prefect_tls_context` makes those Prefect modules reuse one context per CA file
(and its modification time). Only the verified form is shared (a ``cafile`` and nothing
else): Prefect and httpx only read such a context, while the insecure form
(``create_default_context()``, which Prefect then changes) is built afresh as before. The
warm runner calls it once before forking engines; envforge.launch.prefect_cli starts the
process worker with it. Verification is unchanged: the same CA file, the same defaults.
"""

from __future__ import annotations

import importlib
import os
import ssl
import threading
import types
from typing import Any

#: the Prefect modules that build a context per client (module global ``ssl`` replaced)
PREFECT_TLS_MODULES = ("prefect.client.orchestration", "prefect._internal.websockets",
                       "prefect._internal.version_checking")

_lock = threading.Lock()
_contexts: dict[tuple[str, int], ssl.SSLContext] = {}


def shared_default_context(purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH, *,
                           cafile: str | None = None, capath: str | None = None,
                           cadata: str | bytes | None = None) -> ssl.SSLContext:
    """``ssl.create_default_context``, except that a server-verifying context of one CA file
    (nothing else given) is built once per file version and then reused."""
    if purpose is not ssl.Purpose.SERVER_AUTH or cafile is None or capath or cadata:
        return ssl.create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)
    try:
        key = (os.path.realpath(cafile), os.stat(cafile).st_mtime_ns)
    except OSError:  # let ssl say what is wrong with the file
        return ssl.create_default_context(purpose, cafile=cafile)
    with _lock:
        context = _contexts.get(key)
        if context is None:
            context = ssl.create_default_context(purpose, cafile=cafile)
            _contexts[key] = context
        return context


class _SharedSsl(types.ModuleType):
    """The ``ssl`` module as the Prefect modules see it: all of it, with the shared context."""

    create_default_context = staticmethod(shared_default_context)

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)


def share_prefect_tls_context() -> list[str]:
    """Point the Prefect modules that build a context per client at the shared one; returns
    the modules changed (a module missing from this Prefect version is skipped)."""
    changed = []
    for name in PREFECT_TLS_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "ssl", None) is ssl:
            module.ssl = _SharedSsl("ssl")  # type: ignore[attr-defined]
            changed.append(name)
    return changed
