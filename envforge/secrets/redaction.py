"""Masking fetched secret values in log records and error messages.

Every value fetched from Vault is registered with a :class:`SecretRedactor`. Installed, it masks
those values (and their base64 and JSON-escaped forms, which is how they look inside a
Kubernetes request body) in every log record, envforge's and Prefect's alike: as a filter on the
named loggers and their handlers, and through the log-record factory so records of any logger,
and handlers added later (Prefect's API log handler, pytest's capture), never see a value.
A part of a value (what is left after a template's ``truncate`` or a slice) is masked too
(envforge.core.secret_parts), so the GitOps guard, which asks this redactor, refuses it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from envforge.core.secret_parts import mask_parts, secret_parts
from envforge.core.sensitive import without_credentials

MASK = "********"
#: Loggers whose handlers get the filter when installed (Prefect's run loggers included).
DEFAULT_LOGGERS = ("", "envforge", "prefect", "prefect.flow_runs", "prefect.task_runs")


class SecretRedactor(logging.Filter):
    """A set of values to mask; a logging filter that masks them in records it sees."""

    def __init__(self) -> None:
        super().__init__()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._parts: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        """Mask ``value`` from now on, with its base64 and JSON-escaped forms and its parts."""
        if not value or not value.strip():
            return
        forms = {value, base64.b64encode(value.encode()).decode(), json.dumps(value)[1:-1]}
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            self._parts = self._parts | secret_parts(value)
            ordered = sorted(self._values, key=len, reverse=True)  # longest first
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def register_all(self, values: Iterable[str]) -> None:
        for value in values:
            self.register(value)

    def forget_all(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None
            self._parts = frozenset()

    def __len__(self) -> int:
        return len(self._values)

    def scrub(self, text: str) -> str:
        """``text`` with every registered value replaced by the mask."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return mask_parts(pattern.sub(MASK, text), self._parts, MASK)

    def scrub_exception(self, error: BaseException) -> str:
        """An exception's message, safe to show or record."""
        return self.scrub(str(error))

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record so its message, arguments and traceback text hold no value."""
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: logging reports it later, as it would
            return True
        scrubbed = self.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


_default = SecretRedactor()
_installed_factory: Callable[..., logging.LogRecord] | None = None
_install_lock = threading.Lock()


def default_redactor() -> SecretRedactor:
    """The process-wide redactor the vault:secrets action registers values with."""
    return _default


def install(redactor: SecretRedactor | None = None,
            logger_names: Iterable[str] = DEFAULT_LOGGERS) -> None:
    """Attach the redactor to the named loggers and their current handlers, and wrap the
    log-record factory so records made anywhere are masked at birth by the default redactor.
    Idempotent."""
    global _installed_factory
    redactor = redactor or _default
    for name in logger_names:
        logger = logging.getLogger(name)
        if redactor not in logger.filters:
            logger.addFilter(redactor)
        for handler in logger.handlers:
            if redactor not in handler.filters:
                handler.addFilter(redactor)
    with _install_lock:
        if _installed_factory is not None:
            return
        previous = logging.getLogRecordFactory()

        def masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _default.filter(record)
            return record

        logging.setLogRecordFactory(masking_factory)
        _installed_factory = previous


def scrub(text: str) -> str:
    """``text`` with every value known to the default redactor masked."""
    return _default.scrub(text)



#: Values shorter than this are not masked: they would match everywhere in logs.
MIN_MASKED_LENGTH = 6


def mask_credential_values(parameters: Mapping[str, Any], marked: set[str] | None = None
                           ) -> list[str]:
    """Register the values of credential parameters with the process's redactor, so they are
    masked in every log record and the GitOps guard refuses a commit holding one (a template
    that renders ``${{ parameters.db_pwd }}`` into a manifest). Returns the paths, never the
    values."""
    _, paths = without_credentials(parameters, marked)
    redactor = default_redactor()
    for path in paths:
        value: Any = parameters
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str | int | float) and not isinstance(value, bool) and len(
                str(value)) >= MIN_MASKED_LENGTH:
            redactor.register(str(value))
    if paths:
        install(redactor)
    return paths
