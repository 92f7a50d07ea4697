"""Prometheus metrics, module-level so every process exposes one set (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
