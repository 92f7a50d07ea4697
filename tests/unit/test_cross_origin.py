"""``CrossOriginMiddleware`` answers exactly as Starlette's ``CORSMiddleware`` does, with or
without an ``Origin`` (its fast path is the request without one)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send

from authgate.core.middleware import CrossOriginMiddleware

OPTIONS: dict[str, Any] = {
    "allow_origins": ["https://app.example.com"],
    "allow_credentials": True,
    "allow_methods": ["GET", "POST", "PATCH", "DELETE"],
    "allow_headers": ["Authorization", "Content-Type", "X-Request-ID"],
    "expose_headers": ["Retry-After", "X-Request-ID", "WWW-Authenticate"],
    "max_age": 600,
}


def _app(headers: list[tuple[bytes, bytes]]) -> Any:
    async def app(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def _answer(middleware: Any, request_headers: list[tuple[bytes, bytes]]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/users/me",
        "headers": request_headers,
        "query_string": b"",
    }
    await middleware(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    "response_headers",
    [
        [(b"content-type", b"application/json")],
        [(b"vary", b"Accept-Encoding"), (b"content-type", b"application/json")],
        [(b"vary", b"Accept"), (b"x-a", b"1"), (b"vary", b"Cookie")],
    ],
)
@pytest.mark.parametrize(
    "origin", [None, b"https://app.example.com", b"https://elsewhere.example.com"]
)
async def test_same_answer_as_starlette(
    response_headers: list[tuple[bytes, bytes]], origin: bytes | None
) -> None:
    request_headers = [(b"host", b"authgate"), (b"user-agent", b"test")]
    if origin is not None:
        request_headers.append((b"origin", origin))
    ours = await _answer(CrossOriginMiddleware(_app(response_headers), **OPTIONS), request_headers)
    theirs = await _answer(CORSMiddleware(_app(response_headers), **OPTIONS), request_headers)
    assert ours == theirs
    assert (b"vary", b"Origin") in ours[0]["headers"] or any(
        key == b"vary" and value.endswith(b", Origin") for key, value in ours[0]["headers"]
    )
