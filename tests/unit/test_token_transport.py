"""The token transport (``authgate.auth.transport``): the Origin rule, the cookie's rendering,
and that every route answering a ``TokenPair`` offers cookie mode and documents it."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from authgate.app import create_app
from authgate.auth.schemas import TokenPair, TokenTransportChoice
from authgate.auth.transport import (
    COOKIE_PATH,
    RefreshCookie,
    TokenTransport,
    allowed_origins,
    origin_allowed,
    origin_of,
)
from tests.support.settings import make_settings

API = "/api/v1"


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(make_settings())


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://localhost:5173", "http://localhost:5173"),
        ("http://localhost:5173/", "http://localhost:5173"),
        ("HTTPS://App.Example.com:443", "https://app.example.com"),
        ("http://example.com:80/x?y", "http://example.com"),
        ("https://example.com:8443", "https://example.com:8443"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("null", None),
        ("", None),
        ("ftp://example.com", None),
        ("http://user@example.com", None),
        ("http://example.com:99999", None),
        ("http://", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_the_allowed_origins_are_the_cors_allowlist_and_the_own_origin() -> None:
    settings = make_settings(
        public_url="https://auth.example.com:443",
        cors_origins=["https://app.example.com", "http://localhost:5173/"],
    )
    assert allowed_origins(settings) == {
        "https://auth.example.com",
        "https://app.example.com",
        "http://localhost:5173",
    }
    default = make_settings()
    assert allowed_origins(default) == {"http://localhost:5173", "http://127.0.0.1:8000"}


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("https://app.example.com", True),
        ("https://app.example.com:443", True),
        ("https://APP.example.com", True),
        ("https://auth.example.com", True),
        (None, False),
        ("", False),
        ("null", False),
        ("http://app.example.com", False),
        ("https://app.example.com:8443", False),
        ("https://app.example.com.evil.example", False),
        ("https://evil.example", False),
        ("https://app.example.com/", False),
        ("https://app.example.com/x", False),
        ("https://app.example.com?x", False),
        ("https://user@app.example.com", False),
    ],
)
def test_origin_allowed(header: str | None, allowed: bool) -> None:
    origins = frozenset({"https://app.example.com", "https://auth.example.com"})
    assert origin_allowed(header, origins) is allowed


def test_cookie_rendering() -> None:
    cookie = RefreshCookie.of(make_settings())
    assert cookie.setting("agr_abc-DEF_123", 60) == (
        "authgate_refresh=agr_abc-DEF_123; HttpOnly; Secure; SameSite=Strict; "
        "Path=/api/v1/auth; Max-Age=60"
    )
    assert cookie.clearing() == (
        "authgate_refresh=; HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth; Max-Age=0"
    )
    other = RefreshCookie.of(
        make_settings(
            refresh_cookie_name="rt",
            refresh_cookie_samesite="none",
            refresh_cookie_domain="example.com",
        )
    )
    assert other.setting("agr_x", 5) == (
        "rt=agr_x; HttpOnly; Secure; SameSite=None; Path=/api/v1/auth; Domain=example.com; "
        "Max-Age=5"
    )
    for bad in ("agr_x; Domain=evil", "agr x", "agr_x,y", 'agr_"x"', "agr_\r\nx"):
        with pytest.raises(ValueError, match="cookie-safe"):
            cookie.setting(bad, 5)


def test_the_cookie_path_is_where_refresh_and_logout_live(app: FastAPI) -> None:
    paths = {path for path, _ in api_routes(app)}
    for name in ("refresh", "logout", "logout-all"):
        assert f"{COOKIE_PATH}/{name}" in paths


# -- every TokenPair route adopts the transport -----------------------------------------------------


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models in an annotation (``Model``, ``Model | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """Every operation with its full path. FastAPI (≥ 0.13x) keeps an included router as one
    entry of ``app.routes`` that holds the router and its prefix (one level deep here)."""
    found: list[tuple[str, APIRoute]] = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            found.append((route.path, route))
        router = getattr(route, "original_router", None)
        if router is not None:
            prefix: str = route.include_context.prefix  # type: ignore[attr-defined]
            found.extend((prefix + r.path, r) for r in router.routes if isinstance(r, APIRoute))
    return found


def token_pair_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    routes = [(path, r) for path, r in api_routes(app) if r.response_model is TokenPair]
    assert len(routes) >= 4
    return routes


def test_every_route_answering_a_token_pair_offers_cookie_mode(app: FastAPI) -> None:
    """A new sign-in route (MFA, passkeys) that answers a ``TokenPair`` takes the transport
    dependency and a body with ``refresh_token_transport``; ``/auth/token`` stays body-only."""
    found = set()
    for path, route in token_pair_routes(app):
        found.add(path)
        hints = typing.get_type_hints(route.endpoint, include_extras=True)
        plain = {
            name: typing.get_args(h)[0] if typing.get_args(h) else h for name, h in hints.items()
        }
        assert TokenTransport in plain.values(), f"{path} does not take TokenTransportDep"
        bodies = [m for h in hints.values() for m in _models(h)]
        assert any(issubclass(m, TokenTransportChoice) for m in bodies), (
            f"{path}: its body does not inherit TokenTransportChoice"
        )
    assert {
        f"{API}/auth/login",
        f"{API}/auth/refresh",
        f"{API}/oauth/token",
        f"{API}/users/me/password",
    } <= found
    assert f"{API}/auth/token" not in found


def test_openapi_documents_cookie_mode(app: FastAPI) -> None:
    spec = app.openapi()
    schemas = spec["components"]["schemas"]
    refresh_token = schemas["TokenPair"]["properties"]["refresh_token"]
    assert {"type": "null"} in refresh_token["anyOf"]
    assert "null" in refresh_token["description"]
    # /auth/token (RFC 6749) always has its refresh token in the body.
    assert schemas["OAuth2TokenResponse"]["properties"]["refresh_token"]["type"] == "string"

    for path, _ in token_pair_routes(app):
        op = spec["paths"][path]["post"]
        assert "Set-Cookie" in op["responses"]["200"]["headers"], path
        body = op["requestBody"]["content"]["application/json"]["schema"]
        refs = [body.get("$ref")] + [s.get("$ref") for s in body.get("anyOf", [])]
        (ref,) = [r for r in refs if r]
        properties = schemas[ref.rsplit("/", 1)[1]]["properties"]
        assert properties["refresh_token_transport"]["enum"] == ["body", "cookie"]
        assert properties["refresh_token_transport"]["default"] == "body"

    for path in ("refresh", "logout"):
        op = spec["paths"][f"{API}/auth/{path}"]["post"]
        assert "csrf_failed" in op["responses"]["403"]["description"]
        assert "401" in op["responses"]
        assert op["requestBody"].get("required", False) is False
        (param,) = [p for p in op["parameters"] if p["in"] == "cookie"]
        assert param["name"] == "authgate_refresh"
        assert param["required"] is False
    for path in ("logout", "logout-all"):
        op = spec["paths"][f"{API}/auth/{path}"]["post"]
        assert "Max-Age=0" in op["responses"]["204"]["headers"]["Set-Cookie"]["description"]
