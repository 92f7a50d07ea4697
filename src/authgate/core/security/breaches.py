"""The breached-password check: the Pwned Passwords k-anonymity range API (docs/passwords.md).

Only the first 5 hex digits of the password's SHA-1 leave the process
(``GET {AUTHGATE_HIBP_URL}/range/{PREFIX}`` with ``Add-Padding: true``); the answer lists every
known suffix under that prefix with its count, padded with count-0 decoys that are ignored. The
comparison happens here.

When the API does not answer within ``BREACH_CHECK_TIMEOUT`` seconds (unreachable, timeout,
5xx, anything but a 200), ``AUTHGATE_PASSWORD_BREACH_FAIL`` decides: ``open`` accepts the
password with a warning log line and ``authgate_password_breach_check_failures_total``,
``closed`` raises ``ServiceUnavailable`` (503). Nothing is cached, failures included.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

import httpx

from authgate.config import Settings
from authgate.core.errors import PasswordPolicyError, ServiceUnavailable
from authgate.core.metrics import BREACH_CHECK_FAILURES

__all__ = ["BREACH_CHECK_TIMEOUT", "BreachChecker", "make_breach_http_client"]

logger = logging.getLogger(__name__)

#: The whole range request (connect, send, read) must finish within this many seconds.
BREACH_CHECK_TIMEOUT = 2.0
PREFIX_LENGTH = 5
RETRY_AFTER = 5

BREACHED_DETAIL = (
    "This password has appeared in a data breach, so attackers try it first; choose another one."
)
UNAVAILABLE_DETAIL = "The password cannot be checked right now; try again shortly."


def make_breach_http_client() -> httpx.AsyncClient:
    """The one HTTP client of the range API (the runtime owns it and closes it on shutdown)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(BREACH_CHECK_TIMEOUT),
        headers={"Add-Padding": "true", "User-Agent": "authgate"},
        follow_redirects=False,
    )


class BreachChecker:
    """Refuses passwords that the range API knows (422 ``weak_password``, reason ``breached``)."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._url = settings.hibp_url.rstrip("/")
        self._fail = settings.password_breach_fail
        self._http = http

    async def check(self, password: str) -> None:
        """Raise ``PasswordPolicyError`` when ``password`` is breached, ``ServiceUnavailable``
        when the API does not answer and the check fails closed; return otherwise."""
        digest = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
        prefix, suffix = digest[:PREFIX_LENGTH], digest[PREFIX_LENGTH:]
        try:
            body = await self._range(prefix)
        except (httpx.HTTPError, TimeoutError) as exc:
            self._failed(exc)
            return
        if _contains(body, suffix):
            raise PasswordPolicyError(detail=BREACHED_DETAIL, extra={"reason": "breached"})

    async def _range(self, prefix: str) -> str:
        async with asyncio.timeout(BREACH_CHECK_TIMEOUT):
            response = await self._http.get(f"{self._url}/range/{prefix}")
            response.raise_for_status()
            if response.status_code != httpx.codes.OK:  # 1xx/3xx: not an answer either
                raise httpx.HTTPStatusError(
                    f"unexpected status {response.status_code}",
                    request=response.request,
                    response=response,
                )
            return response.text

    def _failed(self, exc: Exception) -> None:
        BREACH_CHECK_FAILURES.labels(fail=self._fail).inc()
        # The error's class only: never the password, its hash or the prefix.
        logger.warning(
            "password.breach_check.failed",
            extra={"error": type(exc).__name__, "fail": self._fail},
        )
        if self._fail == "closed":
            raise ServiceUnavailable(UNAVAILABLE_DETAIL, retry_after=RETRY_AFTER)


def _contains(body: str, suffix: str) -> bool:
    """Whether the range body lists ``suffix`` with a count above 0 (count-0 lines are padding)."""
    for line in body.splitlines():
        candidate, _, count = line.strip().partition(":")
        if candidate.upper() == suffix:
            return count.strip().isdigit() and int(count) > 0
    return False
