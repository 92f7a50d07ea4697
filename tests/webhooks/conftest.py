"""Fixtures of the webhook tests: a real receiver on loopback, the app configured to use it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.webhooks import Receiver, webhook_overrides


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def settings_overrides(receiver: Receiver) -> dict[str, Any]:
    return webhook_overrides(receiver)
