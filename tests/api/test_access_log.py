"""The HTTP server's access log never prints an OAuth code or state (issue 11), end to end."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
import uvicorn

from authgate.app import create_app
from authgate.config import Settings
from authgate.runtime import Runtime


async def test_callback_query_is_redacted_in_uvicorns_access_log(
    settings: Settings, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, runtime=runtime)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/api/v1/oauth/nope/callback"
        with caplog.at_level(logging.INFO, logger="uvicorn.access"):
            async with httpx.AsyncClient() as http:
                await http.get(url, params={"code": "C0DE-SECRET", "state": "ST4TE-SECRET"})
    finally:
        server.should_exit = True
        await task
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("/callback?code=[redacted]&state=[redacted]" in line for line in lines), lines
    assert not any("SECRET" in line for line in lines)
