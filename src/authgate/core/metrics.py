"""Prometheus metrics, module-level so every process exposes one set (``GET /metrics``)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

EMAIL_QUEUED = Counter("authgate_email_queued_total", "Emails written to the outbox", ["template"])
EMAIL_DROPPED = Counter(
    "authgate_email_dropped_total",
    "Emails not queued because their recipient had too many (email_recipient limit)",
    ["template"],
)
EMAIL_SENT = Counter("authgate_email_sent_total", "Emails delivered to the provider", ["backend"])
EMAIL_RETRIED = Counter(
    "authgate_email_retried_total", "Email deliveries scheduled for retry", ["backend"]
)
EMAIL_DEAD = Counter(
    "authgate_email_dead_total", "Emails moved to the dead-letter state", ["backend"]
)

# Webhooks, per endpoint: ``endpoint`` is the endpoint's short name (host#key), never its secret.
WEBHOOK_QUEUED = Counter(
    "authgate_webhook_queued_total", "Webhook events written to the outbox", ["endpoint"]
)
WEBHOOK_DELIVERED = Counter(
    "authgate_webhook_delivered_total", "Webhook events delivered (a 2xx answer)", ["endpoint"]
)
WEBHOOK_FAILED = Counter(
    "authgate_webhook_failed_attempts_total",
    "Webhook delivery attempts that failed (non-2xx, timeout, connection error)",
    ["endpoint"],
)
WEBHOOK_DEAD = Counter(
    "authgate_webhook_dead_total", "Webhook events given up after 24 hours", ["endpoint"]
)
WEBHOOK_OLDEST_AGE = Gauge(
    "authgate_webhook_oldest_undelivered_age_seconds",
    "Age of the oldest event not yet delivered (0 when none is waiting)",
    ["endpoint"],
)

LOGINS = Counter("authgate_logins_total", "Login attempts by outcome", ["outcome"])
REFRESHES = Counter("authgate_refreshes_total", "Refresh attempts by outcome", ["outcome"])
TOKEN_REUSE = Counter(
    "authgate_refresh_reuse_detected_total", "Spent refresh tokens presented again"
)
RATE_LIMITED = Counter("authgate_rate_limited_total", "Requests refused by a rate limit", ["limit"])
REQUEST_LATENCY = Histogram(
    "authgate_request_duration_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BREACH_CHECK_FAILURES = Counter(
    "authgate_password_breach_check_failures_total",
    "Breached-password checks the range API did not answer, by AUTHGATE_PASSWORD_BREACH_FAIL",
    ["fail"],
)

# -- what the operator's dashboard needs besides the counters above (deploy/grafana) ------------

#: The outbox backlog, as the dispatcher last saw it (every ``BACKLOG_INTERVAL``); every process
#: that dispatches reports the same global numbers, so dashboards take the max over instances.
OUTBOX_PENDING = Gauge(
    "authgate_email_outbox_pending",
    "Outbox rows (mail and jobs) not delivered yet: pending or being sent",
)
OUTBOX_OLDEST_AGE = Gauge(
    "authgate_email_outbox_oldest_age_seconds",
    "Age of the oldest undelivered outbox row (0 when the outbox is empty)",
)
HASH_IN_FLIGHT = Gauge(
    "authgate_password_hash_in_flight",
    "Password hashes, verifications and strength checks running or waiting for a thread",
)
HASH_CAPACITY = Gauge(
    "authgate_password_hash_capacity",
    "Jobs the hashing pool admits at once (AUTHGATE_HASH_WORKERS + AUTHGATE_HASH_QUEUE_LIMIT); "
    "beyond it a request answers 503",
)
READY = Gauge(
    "authgate_ready",
    "1 when the dependency answered this process's last readiness check (GET /health/ready or "
    "a scrape of /metrics), else 0",
    ["dependency"],
)


class _PoolCollector(Collector):
    """Database pool use, read from the engines' pools at scrape time (SQLAlchemy keeps the
    counts; nothing is maintained here)."""

    def __init__(self) -> None:
        self._engines: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()

    def track(self, engine: Engine, capacity: int) -> None:
        """Report ``engine``'s pool (which may open ``capacity`` connections) while it lives."""
        self._engines[engine] = capacity

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_use = capacity = 0
        for engine, limit in list(self._engines.items()):
            pool = engine.pool
            if isinstance(pool, QueuePool):
                in_use += pool.checkedout()
                capacity += limit
        yield GaugeMetricFamily(
            "authgate_db_pool_connections_in_use",
            "Database connections checked out of this process's pools",
            value=in_use,
        )
        yield GaugeMetricFamily(
            "authgate_db_pool_capacity",
            "Connections this process's pools may open (pool size + overflow)",
            value=capacity,
        )


DB_POOLS = _PoolCollector()
REGISTRY.register(DB_POOLS)
