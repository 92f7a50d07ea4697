"""The refresh cookie is honoured only from an allowed origin (docs/api.md §10), checked with
plain HTTP against a real server: a foreign or missing ``Origin`` gets 403 ``csrf_failed``, and
the cookie's token is neither spent nor revoked."""

from __future__ import annotations

import itertools

import httpx
import pytest

from tests.support.browser import (
    COOKIE,
    PASSWORD,
    AuthgateProcess,
    SpaServer,
    cookie_from,
    verified_user,
)
from tests.support.mail import SmtpSink

pytestmark = pytest.mark.slow

_serial = itertools.count()


async def signed_in_cookie(authgate: AuthgateProcess, sink: SmtpSink, origin: str) -> str:
    email = f"csrf-{next(_serial)}@example.com"
    await verified_user(authgate, sink, email)
    async with authgate.api(origin=origin) as api:
        response = await api.post(
            "/api/v1/auth/login",
            json={"email": email, "password": PASSWORD, "refresh_token_transport": "cookie"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] is None
    cookie = cookie_from(response)
    assert cookie is not None and cookie.startswith("agr_"), response.headers
    return cookie


@pytest.mark.parametrize("origin", ["foreign", "other-site", "null", "missing"])
async def test_cookie_from_a_foreign_or_missing_origin_is_refused(
    origin: str, authgate: AuthgateProcess, spa: SpaServer, smtp_sink: SmtpSink
) -> None:
    cookie = await signed_in_cookie(authgate, smtp_sink, spa.origin)
    headers = {"Cookie": f"{COOKIE}={cookie}"}
    sent = {"foreign": "https://evil.example", "other-site": spa.other_site, "null": "null"}
    if origin in sent:
        headers["Origin"] = sent[origin]
    async with httpx.AsyncClient(base_url=authgate.url, timeout=10) as api:
        for path in ("/api/v1/auth/refresh", "/api/v1/auth/logout"):
            response = await api.post(path, json={}, headers=headers)
            assert response.status_code == 403, (path, response.text)
            assert response.json()["code"] == "csrf_failed"
            assert cookie_from(response) is None  # neither set nor cleared

        # Not spent, not revoked: from the SPA's origin the same cookie still refreshes.
        response = await api.post(
            "/api/v1/auth/refresh",
            json={},
            headers={"Cookie": f"{COOKIE}={cookie}", "Origin": spa.origin},
        )
    assert response.status_code == 200, response.text
    rotated = cookie_from(response)
    assert rotated is not None and rotated.startswith("agr_") and rotated != cookie
    assert authgate.audit_count("refresh_reuse_detected") == 0


async def test_cookie_from_the_services_own_origin_is_honoured(
    authgate: AuthgateProcess, spa: SpaServer, smtp_sink: SmtpSink
) -> None:
    cookie = await signed_in_cookie(authgate, smtp_sink, spa.origin)
    async with authgate.api(origin=authgate.url) as api:
        response = await api.post(
            "/api/v1/auth/refresh", json={}, headers={"Cookie": f"{COOKIE}={cookie}"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] is None
