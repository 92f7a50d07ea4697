"""create_app(settings): the FastAPI application and its lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from authgate import __version__, problems
from authgate import openapi as openapi_document
from authgate.admin.router import router as admin_router
from authgate.auth.router import router as auth_router
from authgate.config import Settings
from authgate.core.logging import configure_logging
from authgate.core.middleware import CrossOriginMiddleware, HardeningMiddleware
from authgate.mfa.router import router as mfa_router
from authgate.oauth.router import router as oauth_router
from authgate.ops.router import SWAGGER_ASSETS, ops, well_known
from authgate.passkeys.router import router as passkeys_router
from authgate.runtime import Runtime
from authgate.sessions.router import router as sessions_router
from authgate.users.router import router as users_router

API_PREFIX = "/api/v1"


def settle_heap() -> None:
    """Move everything built at startup (modules, the app, the runtime: ~215,000 tracked
    objects) out of the cyclic collector's reach, once the process is ready to serve.

    A full collection walks every tracked object, and with the startup heap it stalled the event
    loop for 220-290 ms on the bench machine, every request in flight waiting (``BENCH_GC_PROBE=1
    python -m bench.inprocess health``; the users-me latency run caught one). Frozen, the same
    collection walks only what requests left behind (0.0 ms there). The startup objects live as
    long as the process anyway; garbage made before is collected first."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or Runtime.build(settings)
        app.state.runtime = rt
        await rt.start()
        settle_heap()
        try:
            yield
        finally:
            await rt.close()

    app = FastAPI(
        title="authgate",
        version=__version__,
        description="Authentication service: accounts, JWT access tokens, rotating refresh tokens.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    problems.install(app)

    # Included one level deep (not through an "/api/v1" router): each level of nesting is
    # walked again to match every request. Routing tries the routers in the order they are
    # included, every route of each router that does not match, so the most requested paths
    # come first: the probes (GET /health/live; the ops router's paths are all fixed and
    # outside /api), then GET /users/me. No path of one router can match a route of another,
    # so the order changes nothing else; the OpenAPI document keeps the order below.
    features = (
        auth_router,
        users_router,
        mfa_router,
        passkeys_router,
        sessions_router,
        oauth_router,
        admin_router,
    )
    documented = APIRouter()
    for feature in features:
        documented.include_router(feature, prefix=API_PREFIX)
    documented.include_router(well_known)
    documented.include_router(ops)
    app.include_router(ops)
    for feature in (users_router, *(f for f in features if f is not users_router)):
        app.include_router(feature, prefix=API_PREFIX)
    app.include_router(well_known)
    app.mount("/static/docs", StaticFiles(directory=SWAGGER_ASSETS), name="docs-assets")

    # The last added is the outermost: CORS wraps the hardening layer, so the answers that layer
    # gives itself (413, 415) carry the CORS headers too and an SPA can read them like any
    # other error (401, 403, 429 come from the routes, inside both).
    app.add_middleware(HardeningMiddleware, settings=settings)
    app.add_middleware(
        CrossOriginMiddleware,
        allow_origins=settings.cors_allowlist,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["Retry-After", "X-Request-ID", "WWW-Authenticate"],
        max_age=600,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=documented.routes,
            )
            app.openapi_schema = openapi_document.complete(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
