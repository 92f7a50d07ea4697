"""Ending background tasks so that a stop always ends.

Two traps of ``asyncio`` meet here. On Python 3.11 a cancellation can be lost inside the task:
``asyncio.wait_for`` returns the inner result instead of raising ``CancelledError`` when the
cancel arrives just as the awaited operation finishes (CPython gh-86296, fixed in 3.12), and
redis-py wraps every socket write in it. So a background loop ends on a flag its ``stop()`` sets,
never on its cancellation alone. And ``with suppress(CancelledError): await task`` after
``task.cancel()`` also swallows a cancellation of the *caller*, so a caller that bounds the stop
would wait anyway; ``finish`` lets the caller's cancellation through.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def finish(task: asyncio.Task[Any], *, grace: float = 0.0) -> None:
    """Let ``task`` end by itself for up to ``grace`` seconds, then cancel it and wait until it
    has ended; an exception it ended with (other than its cancellation) is raised.

    When the caller is cancelled meanwhile, ``task`` is cancelled too and the caller's
    cancellation propagates without waiting for it.
    """
    try:
        if grace > 0:
            await asyncio.wait({task}, timeout=grace)
        task.cancel()
        await asyncio.wait({task})
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error


__all__ = ["finish"]
