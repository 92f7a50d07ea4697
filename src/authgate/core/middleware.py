"""Pure ASGI middleware: request id, security headers, body limits, JSON-only bodies and the
request latency metric (``authgate_request_duration_seconds`` by method, route and status)."""

from __future__ import annotations

import json
import os
import re
import time
from functools import partial
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.config import Settings
from authgate.core.errors import PayloadTooLarge, problem_body
from authgate.core.logging import request_id_var
from authgate.core.metrics import REQUEST_LATENCY

#: A caller's X-Request-ID is kept when it is this (matched on the raw header bytes).
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
#: Routes that take form bodies (OAuth2 token endpoint) rather than JSON: not checked here.
FORM_PATHS = ("/api/v1/auth/token",)
#: Routes that take a form body as well as JSON (RFC 7662 §2.1 introspection).
JSON_OR_FORM_PATHS = ("/api/v1/auth/introspect",)
FORM_URLENCODED = b"application/x-www-form-urlencoded"
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


#: The ``route`` label of requests no route matched (refused before routing, or 404): one
#: series for all of them, so scanners cannot blow up the metric's cardinality.
UNMATCHED_ROUTE = "<unmatched>"


def route_label(scope: Scope, root_path: str = "") -> str:
    """The route template that served the request (``/api/v1/sessions/{session_id}``), never the
    raw path, from what routing leaves in the scope.

    ``scope["route"]`` is the route as its router declared it, without the prefixes it was
    included under (``/sessions/{session_id}``): the prefix is the part of the request path in
    front of as many segments as the template has (the template matched them; the prefixes are
    fixed strings). A mount (the Swagger UI assets) shows as its prefix, which routing adds to
    ``root_path``, followed by ``/{path}``. ``root_path`` is the scope's before routing.
    """
    template = getattr(scope.get("route"), "path_format", None)
    if isinstance(template, str) and template.startswith("/"):
        segments = str(scope["path"]).split("/")
        depth = template.count("/")
        prefix = "/".join(segments[: len(segments) - depth]) if len(segments) > depth else ""
        return prefix + template
    mounted = str(scope.get("root_path", ""))
    if mounted != root_path and mounted.startswith(root_path):
        return mounted[len(root_path) :] + "/{path}"
    return UNMATCHED_ROUTE


class _TooLarge(PayloadTooLarge):
    """Raised from ``receive``: FastAPI renders it through the AuthgateError handler."""


async def _send_problem(
    send: Send,
    status: int,
    code: str,
    title: str,
    detail: str,
    extra_headers: list[tuple[bytes, bytes]],
) -> None:
    body = json.dumps(problem_body(status, code, title, detail)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *extra_headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_STATIC_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")

#: The methods the latency metric names; any other (a client may send any token) is "OTHER",
#: so a caller cannot grow the metric's label set, nor the children kept for it, without bound.
METRIC_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def security_headers(path: str, *, hsts: bool) -> tuple[tuple[bytes, bytes], ...]:
    """The headers every response to ``path`` carries (besides its request id)."""
    docs = path.startswith("/docs") or path.startswith("/static/docs")
    headers = [
        *_STATIC_HEADERS,
        (b"content-security-policy", DOCS_CSP if docs else API_CSP),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if not path.startswith("/static/"):
        headers.append((b"cache-control", b"no-store"))
    if hsts:
        headers.append(_HSTS)
    return tuple(headers)


class HardeningMiddleware:
    """Every request: a request id (the caller's ``X-Request-ID`` when well-formed, else a new
    one), the security headers, the body checks and one observation of the latency metric.

    Built for the per-request floor (docs/performance.md): the three header sets (API, docs,
    static assets) are built once; one ``send`` wrapper both notes the status and adds the
    headers; the metric's child for each (method, route, status) is looked up once."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.hsts = settings.public_url.startswith("https://")
        self._api = security_headers("/api", hsts=self.hsts)
        self._docs = security_headers("/docs", hsts=self.hsts)
        self._static_docs = security_headers("/static/docs/", hsts=self.hsts)
        self._static = security_headers("/static/", hsts=self.hsts)
        self._observers: dict[tuple[str, str, int], Any] = {}

    def _headers(self, path: str, request_id: str) -> list[tuple[bytes, bytes]]:
        if path.startswith("/static/"):
            fixed = self._static_docs if path.startswith("/static/docs") else self._static
        elif path.startswith("/docs"):
            fixed = self._docs
        else:
            fixed = self._api
        return [(b"x-request-id", request_id.encode()), *fixed]

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METRIC_METHODS:
            method = "OTHER"
        key = (method, route, status)
        child = self._observers.get(key)
        if child is None:
            child = REQUEST_LATENCY.labels(method, route, str(status))
            self._observers[key] = child
        child.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers: dict[bytes, bytes] = {}
        for key, value in scope["headers"]:
            raw_headers.setdefault(key.lower(), value)
        incoming = raw_headers.get(b"x-request-id")
        request_id = (
            incoming.decode("latin-1")
            if incoming is not None and _REQUEST_ID.fullmatch(incoming)
            else os.urandom(8).hex()
        )
        token = request_id_var.set(request_id)
        root_path = scope.get("root_path", "")
        extra = self._headers(scope["path"], request_id)
        started_at = time.perf_counter()
        status = 500  # what the server answers when nothing was sent
        try:
            refused = self._refuse(scope, raw_headers)
            if refused is not None:
                status = refused[0]
                await _send_problem(send, *refused, extra)
                return
            received = 0
            started = False

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body:
                        raise _TooLarge
                return message

            async def send_with_headers(message: Message) -> None:
                nonlocal started, status
                if message["type"] == "http.response.start":
                    started = True
                    status = int(message["status"])
                    headers = list(message.get("headers", ()))
                    existing = {k.lower() for k, _ in headers}
                    headers.extend(item for item in extra if item[0] not in existing)
                    message = {**message, "headers": headers}
                await send(message)

            try:
                await self.app(scope, limited_receive, send_with_headers)
            except _TooLarge:
                if not started:
                    status = 413
                    await _send_problem(
                        send,
                        413,
                        "payload_too_large",
                        "Payload too large",
                        "The request body is too large.",
                        extra,
                    )
            except Exception:
                # A bug: answered here, inside CORS, so the 500 carries the CORS, security and
                # request-id headers (an SPA can read it); then re-raised for Starlette's
                # ServerErrorMiddleware to log (``problems._unhandled``), which sends nothing
                # more once an answer has started.
                if not started:
                    status = 500
                    await _send_problem(
                        send,
                        500,
                        "internal_error",
                        "Internal server error",
                        "An unexpected error occurred.",
                        extra,
                    )
                raise
        finally:
            request_id_var.reset(token)
            self._observe(
                scope["method"],
                route_label(scope, str(root_path)),
                status,
                time.perf_counter() - started_at,
            )

    def _refuse(
        self, scope: Scope, headers: dict[bytes, bytes]
    ) -> tuple[int, str, str, str] | None:
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_large = int(length) > self.max_body
            except ValueError:
                return 400, "bad_request", "Bad request", "Invalid Content-Length."
            if too_large:
                return (
                    413,
                    "payload_too_large",
                    "Payload too large",
                    "The request body is too large.",
                )
        method = scope["method"]
        path: str = scope["path"]
        has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        if (
            method in BODY_METHODS
            and has_body
            and path.startswith("/api/")
            and path not in FORM_PATHS
        ):
            ctype = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
            form_ok = ctype == FORM_URLENCODED and path in JSON_OR_FORM_PATHS
            if ctype != b"application/json" and not ctype.endswith(b"+json") and not form_ok:
                return (
                    415,
                    "unsupported_media_type",
                    "Unsupported media type",
                    "The request body must be application/json.",
                )
        return None


async def _vary_origin(send: Send, message: Message) -> None:
    """What ``CORSMiddleware`` does to the answer of a request without ``Origin``: a
    ``Vary: Origin`` (joined to any ``Vary`` already there, as one header)."""
    if message["type"] == "http.response.start":
        headers = message.setdefault("headers", [])
        found = [i for i, (key, _) in enumerate(headers) if key == b"vary"]
        if not found:
            headers.append((b"vary", b"Origin"))
        else:
            values = b", ".join(headers[i][1] for i in found)
            for i in reversed(found[1:]):
                del headers[i]
            headers[found[0]] = (b"vary", values + b", Origin")
    await send(message)


class CrossOriginMiddleware(CORSMiddleware):
    """Starlette's ``CORSMiddleware``, with a fast path for the requests that carry no
    ``Origin`` (probes, servers, mobile apps: most of them), which it would only have given a
    ``Vary: Origin``: the same header, without parsing the request's headers twice."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not any(key == b"origin" for key, _ in scope["headers"]):
            await self.app(scope, receive, partial(_vary_origin, send))
            return
        await super().__call__(scope, receive, send)
