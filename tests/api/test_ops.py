"""Health, well-known documents, docs served locally, the error format on every path."""

from __future__ import annotations

import httpx
import pytest

from authgate.app import create_app
from authgate.config import Settings
from authgate.runtime import Runtime
from tests.support.factories import Factory
from tests.support.flows import Flows


async def test_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


async def test_docs_use_local_assets_only(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "/static/docs/swagger-ui-bundle.js" in page.text
    assert "'self'" in page.headers["content-security-policy"]
    js = await client.get("/static/docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    css = await client.get("/static/docs/swagger-ui.css")
    assert css.status_code == 200
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200


async def test_openapi_declares_the_token_flow_and_problems(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    (scheme,) = schemes.values()
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    assert "Problem" in spec["components"]["schemas"]
    login = spec["paths"]["/api/v1/auth/login"]["post"]
    assert (
        "401" in login["responses"]
        and "application/problem+json" in login["responses"]["401"]["content"]
    )
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op.get("tags"), (path, method)


async def test_swagger_authorize_logs_in_through_token_endpoint(
    flows: Flows, factory: Factory, client: httpx.AsyncClient
) -> None:
    """What Swagger UI's Authorize button sends: a form POST to the declared tokenUrl."""
    account = await factory.account()
    spec = (await client.get("/openapi.json")).json()
    (scheme,) = spec["components"]["securitySchemes"].values()
    response = await client.post(
        scheme["flows"]["password"]["tokenUrl"],
        data={"grant_type": "password", "username": account.email, "password": account.password},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/nope", 404, "not_found"),
        ("GET", "/api/v1/auth/login", 405, "method_not_allowed"),
        ("DELETE", "/health/live", 405, "method_not_allowed"),
    ],
)
async def test_http_errors_are_problems(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail", "code"}


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"email": 5, "password": []}', b'{"email": "a@example.com"}', b"null", b'"x"'],
)
async def test_bad_json_is_a_422_problem_never_500(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/api/v1/auth/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert isinstance(problem["errors"], list)


async def test_validation_errors_never_echo_the_password(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "x@example.com", "password": "hunter2-secret-value-xyz", "extra": "field"},
    )
    assert response.status_code == 422
    assert "hunter2-secret-value-xyz" not in response.text


async def test_text_plain_body_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b'{"email":"a@example.com","password":"x"}',
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b'{"email": "' + b"a" * 70_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for path in ("/health/live", "/api/v1/users/me", "/api/v1/nope"):
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert (
            response.headers["content-security-policy"]
            == "default-src 'none'; frame-ancestors 'none'"
        )
        assert "x-request-id" in response.headers
        assert "strict-transport-security" not in response.headers  # PUBLIC_URL is http here


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:5173", True),
        ("http://evil.example", False),
        ("null", False),
        ("http://localhost:5173.evil.example", False),
    ],
)
async def test_cors_exact_allowlist(client: httpx.AsyncClient, origin: str, allowed: bool) -> None:
    preflight = await client.options(
        "/api/v1/auth/login",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    simple = await client.get("/health/live", headers={"Origin": origin})
    for response in (preflight, simple):
        if allowed:
            assert response.headers.get("access-control-allow-origin") == origin
            assert response.headers.get("access-control-allow-credentials") == "true"
        else:
            assert "access-control-allow-origin" not in response.headers


async def test_metrics_exposed(factory: Factory, client: httpx.AsyncClient) -> None:
    await factory.account()
    text = (await client.get("/metrics")).text
    assert "authgate_logins_total" in text
    assert "authgate_email_queued_total" in text


async def test_an_unexpected_error_is_a_problem_with_cors_and_security_headers(
    settings: Settings, runtime: Runtime
) -> None:
    """A bug's 500 is answered inside CORS: an SPA can read it (and its request id) like any
    other error, and the exception still reaches the server's log."""
    app = create_app(settings, runtime=runtime)
    app.state.runtime = runtime

    @app.get("/api/v1/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        response = await http.get("/api/v1/boom", headers={"Origin": "http://localhost:5173"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "internal_error"
    assert "a bug" not in response.text
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]

    transport = httpx.ASGITransport(app=app)  # re-raised after the answer: the log sees it
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        with pytest.raises(RuntimeError, match="a bug"):
            await http.get("/api/v1/boom")
