"""Issue 11: log lines cannot be forged or made to carry database messages or query secrets."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from sqlalchemy.exc import IntegrityError

from authgate.core.logging import (
    AccessLogFilter,
    JsonFormatter,
    KeyValueFormatter,
    SafeExceptionFilter,
    redact_query,
    safe_traceback,
)

HOSTILE = "ok\r\n12:00:00 INFO    auth.login.succeeded user_id=admin \x1b[31mred\x1b[0m\u2028x\\n"


def _record(msg: str = "oauth.callback_failed", **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("authgate.test", logging.WARNING, __file__, 1, msg, (), None)
    record.__dict__.update(extra)
    return record


def test_key_value_lines_escape_control_characters() -> None:
    line = KeyValueFormatter().format(_record(f"event{HOSTILE}", error=HOSTILE, **{"a b": 1}))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert "\\r\\n" in line and "\\x1b[31m" in line and "\\u2028" in line
    # A value cannot pose as another field: it is quoted when it holds a space or "=".
    assert " user_id=admin " not in line.split("error=", 1)[1].split('"', 2)[2]
    assert "\\\\n" in line  # a literal backslash-n is not confused with an escaped newline


def test_json_lines_escape_control_characters() -> None:
    line = JsonFormatter().format(_record(error=HOSTILE))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert json.loads(line)["error"] == HOSTILE  # escaped, not altered


class _DriverError(Exception):
    """Stands for the driver's exception (asyncpg's UniqueViolationError...)."""


_DriverError.__module__ = "asyncpg.exceptions"
VICTIM = "victim" + "@example.com"  # built, so no source line quoted in a traceback holds it


def _database_error() -> IntegrityError:
    detail = f"Key (email_key)=({VICTIM}) already exists"
    try:
        try:
            raise _DriverError(detail)
        except _DriverError as orig:
            raise IntegrityError("INSERT INTO users (email) VALUES ($1)", (VICTIM,), orig) from orig
    except IntegrityError as exc:
        return exc


def test_database_error_messages_never_reach_a_log_line() -> None:
    exc = _database_error()
    assert VICTIM in str(exc)  # what a naive traceback would print
    text = safe_traceback(exc)
    assert "IntegrityError" in text and "withheld" in text
    assert "victim" not in text
    record = _record("http.unhandled_error")
    record.exc_info = (type(exc), exc, exc.__traceback__)
    assert "victim" not in KeyValueFormatter().format(record)
    assert "victim" not in JsonFormatter().format(record)
    # uvicorn's own formatter, after our filter: the same.
    SafeExceptionFilter().filter(record)
    assert "victim" not in logging.Formatter().format(record)


def test_other_exception_messages_are_kept_but_escaped() -> None:
    try:
        raise RuntimeError("bad\r\nthing")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = _record("x")
    record.exc_info = exc_info
    text = KeyValueFormatter().format(record)
    assert "RuntimeError: bad\\r\\nthing" in text


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/users/me", "/api/v1/users/me"),
        (
            "/api/v1/oauth/github/callback?code=SECRET&state=STATE",
            "/api/v1/oauth/github/callback?code=[redacted]&state=[redacted]",
        ),
        ("/x?token=t&limit=5&q=a%40b.c", "/x?token=[redacted]&limit=5&q=[redacted]"),
        ("/x?", "/x"),
    ],
)
def test_redact_query(path: str, expected: str) -> None:
    assert redact_query(path) == expected


def test_access_log_filter() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/api/v1/oauth/g/callback\r\nX?code=C0DE&state=S7ATE", "1.1", 302),
        None,
    )
    assert AccessLogFilter().filter(record)
    message = record.getMessage()
    assert "C0DE" not in message and "S7ATE" not in message and "\r" not in message
    assert "code=[redacted]&state=[redacted]" in message
