"""The redactor masks registered values in log records, tracebacks and error text."""

from __future__ import annotations

import base64
import logging

import pytest

from envforge.secrets import redaction
from envforge.secrets.redaction import MASK, SecretRedactor


def test_scrub_masks_every_form_of_a_value() -> None:
    redactor = SecretRedactor()
    redactor.register('pa"ss\nword')
    encoded = base64.b64encode(b'pa"ss\nword').decode()
    text = f'raw=pa"ss\nword b64={encoded} json=pa\\"ss\\nword'
    assert redactor.scrub(text) == f"raw={MASK} b64={MASK} json={MASK}"


def test_longer_values_are_masked_before_their_prefixes() -> None:
    redactor = SecretRedactor()
    redactor.register_all(["abcd", "abcdefgh"])
    assert redactor.scrub("x abcdefgh y") == f"x {MASK} y"


def test_blank_values_are_ignored() -> None:
    redactor = SecretRedactor()
    redactor.register("")
    redactor.register("   ")
    assert len(redactor) == 0
    assert redactor.scrub("nothing to hide") == "nothing to hide"


def test_filter_masks_message_arguments_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    redactor = SecretRedactor()
    redactor.register("hunter2-value")
    logger = logging.getLogger("envforge.test.redaction")
    logger.addFilter(redactor)
    try:
        with caplog.at_level(logging.INFO, logger="envforge.test.redaction"):
            logger.info("token is %s", "hunter2-value")
            try:
                raise RuntimeError("failed with hunter2-value inside")
            except RuntimeError:
                logger.exception("boom")
    finally:
        logger.removeFilter(redactor)
    assert "hunter2-value" not in caplog.text
    assert caplog.text.count(MASK) >= 2


def test_installed_default_masks_records_of_any_logger(caplog: pytest.LogCaptureFixture) -> None:
    redaction.install()
    redaction.default_redactor().register("value-from-vault-42")
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("prefect.task_runs").info("got value-from-vault-42")
            logging.getLogger("some.library").warning("echo %r", {"v": "value-from-vault-42"})
        assert "value-from-vault-42" not in caplog.text
        assert redaction.scrub("x value-from-vault-42") == f"x {MASK}"
    finally:
        redaction.default_redactor().forget_all()


def test_a_broken_format_string_is_left_for_logging_to_report() -> None:
    redactor = SecretRedactor()
    redactor.register("some-secret-1")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d items", ("many",), None)
    assert redactor.filter(record) is True
    assert record.msg == "%d items" and record.args == ("many",)
