"""The one clock. Tests move it with ``freeze``; everything reads ``utc_now()``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def utc_now() -> datetime:
    """Timezone-aware now (plus the test offset, zero outside tests)."""
    return datetime.now(UTC) + _offset


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@contextmanager
def shifted(delta: timedelta) -> Iterator[None]:
    """Move the clock forward for the duration of a block (tests only)."""
    global _offset
    previous = _offset
    _offset = previous + delta
    try:
        yield
    finally:
        _offset = previous
