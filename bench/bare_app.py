"""A bare FastAPI app returning a small JSON: the ceiling that authgate's figures are read against.

Served exactly as ``authgate serve`` serves authgate (uvicorn, one worker, the same flags), so
the ratio "authgate rps / bare rps" isolates what authgate itself costs per request.

    python -m bench.bare_app --port 8001
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # The same uvicorn arguments as authgate.cli.cmd_serve (log level: authgate's default).
    uvicorn.run(
        "bench.bare_app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=False,
        server_header=False,
        log_level="info",
    )


if __name__ == "__main__":
    main()
