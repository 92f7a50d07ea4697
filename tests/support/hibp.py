"""A stand-in for the Pwned Passwords range API: a real HTTP server on a loopback port.

It serves ``GET /range/{PREFIX}`` from a dict of range files (prefix → body, missing prefixes get
an empty body, as padding aside the real API never 404s) and records every request's path and
headers, so a test can check what left the process.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def sha1_hex(password: str) -> str:
    return hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]


@dataclass
class HibpStandIn:
    url: str
    ranges: dict[str, str] = field(default_factory=dict)
    seen: list[SeenRequest] = field(default_factory=list)

    def add_breached(self, password: str, count: int = 42) -> None:
        """List ``password`` in its range file, between padding lines of count 0."""
        digest = sha1_hex(password)
        prefix, suffix = digest[:5], digest[5:]
        padding = [f"{'0' * 34}{n:01X}:0" for n in range(3)]
        lines = [*padding, f"{suffix}:{count}", "F" * 35 + ":0"]
        self.ranges[prefix] = self.ranges.get(prefix, "") + "\r\n".join(lines) + "\r\n"

    def add_padding_only(self, password: str) -> None:
        """List ``password``'s suffix with count 0: the API's padding, not a breach."""
        digest = sha1_hex(password)
        self.ranges[digest[:5]] = f"{digest[5:]}:0\r\n"


@contextmanager
def hibp_stand_in() -> Iterator[HibpStandIn]:
    state = HibpStandIn(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append(
                SeenRequest(self.path, {k.lower(): v for k, v in self.headers.items()})
            )
            prefix = self.path.removeprefix("/range/")
            if not self.path.startswith("/range/") or len(prefix) != 5:
                self.send_error(404)
                return
            body = state.ranges.get(prefix.upper(), "").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test output is not the place for an access log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="hibp-stand-in", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
