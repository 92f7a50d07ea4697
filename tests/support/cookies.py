"""The refresh cookie as a browser would see it: ``Set-Cookie`` parsed, requests that carry it.

The tests send the cookie themselves (a ``Cookie`` header) rather than through httpx's jar: the
jar would not send a ``Secure`` cookie to the ``http://`` test base URL, and a test must choose
exactly what each request carries (no cookie, a stale one, a foreign ``Origin``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

API = "/api/v1"
COOKIE = "authgate_refresh"
#: The origins the test settings allow: ``FRONTEND_URL`` (the CORS allowlist) and ``PUBLIC_URL``.
FRONTEND = "http://localhost:5173"
OWN = "http://127.0.0.1:8000"
#: Sent as ``Origin`` unless a test says otherwise.
ALLOWED = FRONTEND


@dataclass(frozen=True)
class SetCookie:
    """One ``Set-Cookie`` header: the name, the value and the attributes (names lower-cased,
    flags such as ``HttpOnly`` with the value ``""``), in the order sent."""

    name: str
    value: str
    attributes: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    @property
    def max_age(self) -> int:
        return int(self.attributes["max-age"])


def parse_set_cookie(header: str) -> SetCookie:
    first, *rest = (part.strip() for part in header.split(";"))
    name, _, value = first.partition("=")
    attributes: dict[str, str] = {}
    for part in rest:
        key, _, val = part.partition("=")
        assert key.lower() not in attributes, f"{key} twice in {header!r}"
        attributes[key.lower()] = val
    return SetCookie(name.strip(), value.strip(), attributes, header)


def set_cookies(response: httpx.Response) -> list[SetCookie]:
    return [parse_set_cookie(h) for h in response.headers.get_list("set-cookie")]


def refresh_cookie(response: httpx.Response, name: str = COOKIE) -> SetCookie:
    """The one ``Set-Cookie`` of the refresh cookie in ``response`` (asserted)."""
    found = [c for c in set_cookies(response) if c.name == name]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


def no_refresh_cookie(response: httpx.Response, name: str = COOKIE) -> bool:
    return all(c.name != name for c in set_cookies(response))


def without_cookie_jar(client: httpx.AsyncClient) -> None:
    """Make ``client`` keep no cookie from any response (each request says what it carries)."""
    client.cookies = httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))


def _headers(cookie: str | None, origin: str | None, extra: dict[str, str]) -> dict[str, str]:
    headers = dict(extra)
    if cookie is not None:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    if origin is not None:
        headers["Origin"] = origin
    return headers


async def post(
    client: httpx.AsyncClient,
    path: str,
    *,
    cookie: str | None = None,
    origin: str | None = ALLOWED,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """``POST {API}{path}`` carrying the refresh cookie ``cookie`` (if any) from ``origin``
    (if any), with ``json`` as the body (none when None)."""
    return await client.post(
        f"{API}{path}", json=json, headers=_headers(cookie, origin, headers or {})
    )


async def login(
    client: httpx.AsyncClient, email: str, password: str, transport: str = "cookie"
) -> httpx.Response:
    body = {"email": email, "password": password, "refresh_token_transport": transport}
    return await client.post(f"{API}/auth/login", json=body, headers={"Origin": ALLOWED})


async def refresh_by_cookie(
    client: httpx.AsyncClient, cookie: str, origin: str | None = ALLOWED, json: Any = None
) -> httpx.Response:
    return await post(client, "/auth/refresh", cookie=cookie, origin=origin, json=json)


async def logout_by_cookie(
    client: httpx.AsyncClient,
    cookie: str,
    origin: str | None = ALLOWED,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await post(client, "/auth/logout", cookie=cookie, origin=origin, headers=headers)
