"""Settings and store types for the abuse-protection tests (rate limits, throttle, stores)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authgate.config import Settings
from authgate.core.store import Store

#: Store timeouts: the functional tests must not fail on a loaded CI machine (50 parallel
#: connects), the outage tests use the production default and check how fast failures surface.
FUNCTIONAL_TIMEOUT = 2.0
OUTAGE_TIMEOUT = 0.5

#: Generous defaults so tests that are not about a limit never hit one.
TEST_LIMITS = {"login_account": "1000/hour", "login_ip": "5/minute"}


def abuse_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "env": "test",
        "rate_limits_enabled": True,
        "rate_limits": TEST_LIMITS,
        "store_timeout": OUTAGE_TIMEOUT,
    }
    values.update(overrides)
    return Settings(**values)


StoreFactory = Callable[[], Store]
