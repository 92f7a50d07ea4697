"""Well-known documents, health, metrics and the Swagger UI served from local assets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Response, status
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from authgate.core.metrics import READY
from authgate.deps import RuntimeDep, SettingsDep
from authgate.runtime import Runtime

#: Swagger UI 5 assets shipped inside the fastapi-offline wheel: /docs works with no internet.
SWAGGER_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"

well_known = APIRouter(tags=["well-known"])
ops = APIRouter(tags=["ops"])


@well_known.get("/.well-known/jwks.json", status_code=status.HTTP_200_OK)
async def jwks(runtime: RuntimeDep) -> JSONResponse:
    runtime.ring.maybe_reload()
    return JSONResponse(runtime.jwt.jwks(), headers={"Cache-Control": "public, max-age=300"})


@well_known.get("/.well-known/openid-configuration", status_code=status.HTTP_200_OK)
async def openid_configuration(settings: SettingsDep) -> dict[str, Any]:
    base = settings.public_url
    return {
        "issuer": base,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "token_endpoint": f"{base}/api/v1/auth/token",
        "introspection_endpoint": f"{base}/api/v1/auth/introspect",
        "grant_types_supported": ["password", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "id_token_signing_alg_values_supported": [settings.jwt_algorithm],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "scopes_supported": [],
    }


@ops.get("/health/live", status_code=status.HTTP_200_OK)
async def live() -> dict[str, str]:
    return {"status": "ok"}


#: Seconds the database check may take before it counts as down (a scrape must not hang).
READY_TIMEOUT = 5.0

READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The database or the store is down (same body, `status: unavailable`)",
        "content": {"application/json": {}},
    }
}


async def readiness(runtime: Runtime) -> dict[str, str]:
    """``{dependency: "ok" | "down"}`` for the database and (when configured) Redis; also sets
    the ``authgate_ready`` gauge, so a scrape of /metrics sees the same answer."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT), runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - readiness reports any failure as "down"
        checks["database"] = "down"
    if runtime.settings.redis_url:
        checks["redis"] = "ok" if await runtime.store.ping() else "down"
    for dependency, state in checks.items():
        READY.labels(dependency).set(1 if state == "ok" else 0)
    return checks


@ops.get("/health/ready", status_code=status.HTTP_200_OK, responses=READY_RESPONSES)
async def ready(runtime: RuntimeDep) -> JSONResponse:
    checks = await readiness(runtime)
    ok = all(v == "ok" for v in checks.values())
    headers = {} if ok else {"Retry-After": "5"}
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
        headers=headers,
    )


@ops.get("/metrics", status_code=status.HTTP_200_OK, include_in_schema=False)
async def metrics(runtime: RuntimeDep) -> Response:
    # Readiness is measured at each scrape, so an alert on authgate_ready needs no prober.
    await readiness(runtime)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@ops.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="authgate — API docs",
        swagger_js_url="/static/docs/swagger-ui-bundle.js",
        swagger_css_url="/static/docs/swagger-ui.css",
        swagger_favicon_url="data:,",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_ui_parameters={"persistAuthorization": False},
    )


@ops.get("/docs/oauth2-redirect", include_in_schema=False)
async def docs_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()
