"""The breached-password check (CONTRACT §7) against a real local stand-in of the range API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.support.api import assert_problem
from tests.support.db import authgate_logs, scan_logs
from tests.support.hibp import HibpStandIn, hibp_stand_in, sha1_hex
from tests.support.servers import free_port

REGISTER = "/api/v1/auth/register"
#: Strong by zxcvbn (score 4), so only the breach check can refuse it.
BREACHED = "violet kayak under lunar gravel"
CLEAN = "amber falcon beside quiet quarry"


def failures(fail: str) -> float:
    value = REGISTRY.get_sample_value(
        "authgate_password_breach_check_failures_total", {"fail": fail}
    )
    return value or 0.0


@pytest.fixture
def hibp() -> Iterator[HibpStandIn]:
    with hibp_stand_in() as server:
        yield server


class TestWithTheRangeApi:
    @pytest.fixture
    def settings_overrides(self, hibp: HibpStandIn) -> dict[str, Any]:
        return {"password_breach_check": "hibp", "hibp_url": hibp.url}

    async def test_a_breached_password_is_refused_and_only_the_prefix_leaves(
        self, client: httpx.AsyncClient, hibp: HibpStandIn
    ) -> None:
        hibp.add_breached(BREACHED)
        response = await client.post(
            REGISTER, json={"email": "a@example.com", "password": BREACHED}
        )
        assert_problem(response, 422, "weak_password")
        assert response.json()["reason"] == "breached"
        assert "breach" in response.json()["detail"]
        digest = sha1_hex(BREACHED)
        assert [seen.path for seen in hibp.seen] == [f"/range/{digest[:5]}"]
        assert hibp.seen[0].headers["add-padding"] == "true"
        everything_sent = repr(hibp.seen)
        assert digest[5:] not in everything_sent
        assert BREACHED not in everything_sent

    async def test_a_password_not_in_the_range_is_accepted(
        self, client: httpx.AsyncClient, hibp: HibpStandIn
    ) -> None:
        hibp.add_breached(BREACHED)
        hibp.add_padding_only(CLEAN)  # a count-0 line is padding, not a breach
        response = await client.post(REGISTER, json={"email": "b@example.com", "password": CLEAN})
        assert response.status_code == 202, response.text
        assert [seen.path for seen in hibp.seen] == [f"/range/{sha1_hex(CLEAN)[:5]}"]

    async def test_weak_passwords_are_refused_before_the_range_api_is_asked(
        self, client: httpx.AsyncClient, hibp: HibpStandIn
    ) -> None:
        response = await client.post(
            REGISTER, json={"email": "c@example.com", "password": "passwordpassword"}
        )
        assert_problem(response, 422, "weak_password")
        assert hibp.seen == []

    async def test_the_policy_endpoint_says_hibp(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/auth/password-policy")
        assert response.status_code == 200
        assert response.json()["breach_check"] == "hibp"


def _down() -> str:
    """A loopback URL where nothing listens (connection refused at once)."""
    return f"http://127.0.0.1:{free_port()}"


class TestRangeApiDownFailOpen:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"password_breach_check": "hibp", "hibp_url": _down()}

    async def test_accepted_with_a_warning_and_a_metric(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        before = failures("open")
        started = time.perf_counter()
        with authgate_logs(caplog) as records:
            response = await client.post(
                REGISTER, json={"email": "d@example.com", "password": BREACHED}
            )
        assert time.perf_counter() - started < 2.5
        assert response.status_code == 202, response.text
        assert failures("open") == before + 1
        warnings = [r for r in records if r.getMessage() == "password.breach_check.failed"]
        assert len(warnings) == 1
        digest = sha1_hex(BREACHED)
        assert scan_logs(records, [BREACHED, digest, digest[:5], digest[5:]]) == []


class TestRangeApiDownFailClosed:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {
            "password_breach_check": "hibp",
            "hibp_url": _down(),
            "password_breach_fail": "closed",
        }

    async def test_answered_503_with_retry_after(self, client: httpx.AsyncClient) -> None:
        before = failures("closed")
        started = time.perf_counter()
        response = await client.post(REGISTER, json={"email": "e@example.com", "password": CLEAN})
        assert time.perf_counter() - started < 2.5
        assert_problem(response, 503, "service_unavailable")
        assert int(response.headers["retry-after"]) >= 1
        assert failures("closed") == before + 1
        # Nothing was cached: the next attempt asks again (and fails again).
        again = await client.post(REGISTER, json={"email": "e@example.com", "password": CLEAN})
        assert_problem(again, 503, "service_unavailable")
        assert failures("closed") == before + 2
