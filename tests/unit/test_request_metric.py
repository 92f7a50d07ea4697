"""The request latency metric's labels stay bounded whatever a caller sends."""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from authgate.config import Settings
from authgate.core.metrics import REQUEST_LATENCY
from authgate.core.middleware import HardeningMiddleware


async def _not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 405, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _count(method: str, route: str) -> float:
    for metric in REQUEST_LATENCY.collect():
        for sample in metric.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_count")
                and labels["method"] == method
                and labels["route"] == route
            ):
                return sample.value
    return 0.0


async def test_unknown_methods_are_counted_as_other() -> None:
    methods = ["BREW", "PROPFIND", "X-7f3a"]
    middleware = HardeningMiddleware(_not_allowed, Settings(_env_file=None))
    before = _count("OTHER", "/metric-probe")

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    for method in [*methods, "GET"]:
        scope: Scope = {
            "type": "http",
            "method": method,
            "path": "/metric-probe",
            "root_path": "",
            "headers": [],
            "route": type("Route", (), {"path_format": "/metric-probe"})(),
        }
        await middleware(scope, receive, send)

    assert _count("OTHER", "/metric-probe") == before + len(methods)
    assert _count("GET", "/metric-probe") >= 1
    for method in methods:
        assert _count(method, "/metric-probe") == 0
