"""How the ``authgate`` command reports long operations.

On a terminal: a live progress line on stderr (a counter for work in items, elapsed seconds for
a single step) and a human summary on stdout. Piped or redirected: JSON lines on stdout, one
object per item handled and one summary object last, nothing else, so ``| jq`` and log
collectors read every line. Errors always go to stderr as ``error: …`` as well.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable
from typing import Any, TextIO, TypeVar

_T = TypeVar("_T")

#: Seconds between two redraws of a live progress line.
TICK = 0.1
_SPINNER = "|/-\\"


class Report:
    """The output of one command run.

    Args:
        out: Where results go (stdout).
        err: Where progress and errors go (stderr).
        tty: Whether a person is watching; by default, whether ``out`` is a terminal.
    """

    def __init__(
        self, *, out: TextIO | None = None, err: TextIO | None = None, tty: bool | None = None
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self._started = time.monotonic()
        self._line = False

    # -- progress (terminal only) ------------------------------------------------------------

    def progress(self, label: str, done: int, total: int | None = None) -> None:
        """Redraw the progress line: ``label: done/total``."""
        if self.tty:
            count = f"{done}/{total}" if total is not None else str(done)
            self._draw(f"{label}: {count}")

    async def step(self, label: str, work: Awaitable[_T]) -> _T:
        """Await ``work`` while the progress line shows ``label`` and the seconds it takes."""
        if not self.tty:
            return await work
        started = time.monotonic()
        task = asyncio.ensure_future(work)
        tick = 0
        while not task.done():
            self._draw(f"{_SPINNER[tick % 4]} {label} {time.monotonic() - started:.1f}s")
            tick += 1
            await asyncio.wait({task}, timeout=TICK)
        self._clear()
        result = task.result()
        self._write(self.err, f"done: {label} ({time.monotonic() - started:.1f}s)")
        return result

    def _draw(self, text: str) -> None:
        self.err.write("\r\x1b[2K" + text)
        self.err.flush()
        self._line = True

    def _clear(self) -> None:
        if self._line:
            self.err.write("\r\x1b[2K")
            self.err.flush()
            self._line = False

    # -- results -----------------------------------------------------------------------------

    def item(self, record: dict[str, Any], human: str | None) -> None:
        """One thing handled: ``record`` as a JSON line when piped, ``human`` (if any) on a
        terminal."""
        if self.tty:
            if human is not None:
                self._clear()
                self._write(self.out, human)
        else:
            self._json(record)

    def summary(self, record: dict[str, Any], human: str) -> None:
        """The last line: ``record`` when piped, ``human`` and the time taken on a terminal."""
        if self.tty:
            self._clear()
            self._write(self.out, f"{human} ({time.monotonic() - self._started:.1f}s)")
        else:
            self._json(record)

    def error(self, message: str) -> None:
        """``error: message`` on stderr, in both modes."""
        self._clear()
        self._write(self.err, f"error: {message}")

    def _json(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    @staticmethod
    def _write(stream: TextIO, line: str) -> None:
        stream.write(line + "\n")
        stream.flush()
