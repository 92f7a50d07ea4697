"""Structured logs: events with fields, JSON in production, a request id on every line.

What never reaches a line (docs/api.md §4): secrets by field name (``_REDACT``), raw control
characters (escaped: a value cannot forge a line or colour a terminal), the message of a database
error (it may quote SQL and values: only its type is printed), and query-string values in the HTTP
server's access log (OAuth ``code``/``state``, tokens, searched addresses).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import traceback
from typing import Any
from urllib.parse import parse_qsl, quote

from authgate.config import Settings
from authgate.core.text import escape_controls

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
#: Field names that must never reach a log line, whatever a caller passes.
_REDACT = {
    "password",
    "token",
    "refresh_token",
    "access_token",
    "code",
    "secret",
    "link",
    "authorization",
}


#: Modules whose exception messages may quote SQL, bound values or connection strings.
_DATABASE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "psycopg", "alembic")
#: Query parameters whose values the access log may print; every other value is redacted.
_SHOWN_QUERY_KEYS = frozenset({"limit", "cursor", "type", "user_id"})


def _is_database_error(exc: BaseException) -> bool:
    return any(
        (cls.__module__ or "").split(".")[0] in _DATABASE_MODULES for cls in type(exc).__mro__
    )


def safe_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` and its causes, frames and types intact; the message of a
    database error replaced (a DBAPI message can carry SQL and values); control characters in
    other messages escaped."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    parts: list[str] = []
    for index, item in enumerate(reversed(chain)):
        if index:
            parts.append("\nThe above exception led to the following:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(item.__traceback__))
        name = f"{type(item).__module__}.{type(item).__qualname__}"
        if _is_database_error(item):
            parts.append(f"{name}: [database error message withheld]")
        else:
            parts.append(f"{name}: {escape_controls(str(item))}")
    return "".join(parts)


def _exc_text(record: logging.LogRecord) -> str | None:
    if not record.exc_info or record.exc_info[1] is None:
        return None
    return safe_traceback(record.exc_info[1])


class SafeExceptionFilter(logging.Filter):
    """For loggers we do not format (uvicorn's): the traceback is rendered safely up front
    (``Formatter`` uses a record's ``exc_text`` when set) and arguments are escaped."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = _exc_text(record)
        if text is not None:
            record.exc_text = text
        if isinstance(record.args, tuple):
            record.args = tuple(
                escape_controls(a) if isinstance(a, str) else a for a in record.args
            )
        return True


def redact_query(path: str) -> str:
    """``path`` with the value of every query parameter not known to be harmless replaced."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = [
        f"{quote(key, safe='')}="
        + (quote(value, safe="") if key in _SHOWN_QUERY_KEYS else "[redacted]")
        for key, value in pairs
    ]
    return f"{base}?{'&'.join(shown)}" if shown else base


class AccessLogFilter(logging.Filter):
    """uvicorn's access log: ``(client, method, path?query, http_version, status)`` arguments;
    query values redacted, control characters (the path is percent-decoded) escaped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, full_path, version, status = record.args
            record.args = (
                escape_controls(str(client)),
                escape_controls(str(method)),
                escape_controls(redact_query(str(full_path))),
                escape_controls(str(version)),
                status,
            )
        elif isinstance(record.args, tuple):
            record.args = tuple(
                escape_controls(redact_query(a)) if isinstance(a, str) else a for a in record.args
            )
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }
    for key in list(fields):
        if key.lower() in _REDACT:
            fields[key] = "[redacted]"
    rid = request_id_var.get()
    if rid:
        fields.setdefault("request_id", rid)
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            body["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        # json.dumps escapes every control character (ensure_ascii also U+2028/U+2029).
        return json.dumps(body, default=str)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(
            f"{escape_controls(str(k))}={_kv_value(v)}" for k, v in _fields(record).items()
        )
        event = escape_controls(record.getMessage())
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {event}"
        if extra:
            line += " " + extra
        text = _exc_text(record)
        if text is not None:
            line += "\n" + text
        return line


def _kv_value(value: Any) -> str:
    """One token: control characters escaped; a value with spaces, quotes or ``=`` is quoted so
    it cannot pose as another field."""
    text = escape_controls(value if isinstance(value, str) else str(value))
    if not text or any(c in text for c in ' "='):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def configure_logging(settings: Settings) -> None:
    use_json = settings.log_json if settings.log_json is not None else settings.is_production
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else KeyValueFormatter())
    root = logging.getLogger("authgate")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    root.propagate = False
    # uvicorn configures its own handlers before it builds the app; our filters sit on its
    # loggers, so they hold whatever formatter it (or an operator's --log-config) uses.
    _add_once(logging.getLogger("uvicorn.access"), AccessLogFilter)
    _add_once(logging.getLogger("uvicorn.error"), SafeExceptionFilter)
    _add_once(logging.getLogger("uvicorn"), SafeExceptionFilter)


def _add_once(logger: logging.Logger, kind: type[logging.Filter]) -> None:
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())
