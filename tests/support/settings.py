"""Settings for tests: the backends to run against and the base test configuration."""

from __future__ import annotations

import os
from typing import Any

from authgate.config import Settings

#: ``AUTHGATE_TEST_BACKENDS=sqlite`` runs the database tests against one backend only.
BACKENDS = [
    b.strip()
    for b in os.environ.get("AUTHGATE_TEST_BACKENDS", "sqlite,postgres").split(",")
    if b.strip()
]


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "env": "test",
        "log_level": "WARNING",
        "hash_workers": 2,
        "rate_limits_enabled": False,
        "email_backend": "smtp",
        "email_poll_interval": 0.05,
        "email_retry_base_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(**values)
