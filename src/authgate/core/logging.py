"""Structured logs: events with fields, JSON in production, a request id on every line."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from typing import Any

from authgate.config import Settings

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
        return json.dumps(body, default=str)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.getMessage()}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(settings: Settings) -> None:
    use_json = settings.log_json if settings.log_json is not None else settings.is_production
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else KeyValueFormatter())
    root = logging.getLogger("authgate")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    root.propagate = False
