"""The browser tests' world: a real ``authgate serve``, the example SPA's production build on a
small static server, and Debian's Chromium driven by Playwright (never a downloaded browser).

Both servers listen on loopback and are reached as ``localhost`` on two ports: another origin,
but the same site, as an SPA and its auth service usually are (``127.0.0.1`` would be another
site, and the browser would not send a ``SameSite=Strict`` cookie to it). ``127.0.0.1`` with
the SPA's port serves the "other site" of the CSRF tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.support.mail import SmtpSink
from tests.support.node import KIT_DIR, SPA_DIR, npm_ci, run
from tests.support.servers import free_port, wait_for_port

CHROMIUM = Path("/usr/bin/chromium")
#: As root Chromium needs --no-sandbox; the rest keeps it off a network it cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: A passphrase the default policy (15 code points, zxcvbn 3) accepts.
PASSWORD = "violet tractor sings under nine moons"
NEW_PASSWORD = "quiet harbour lanterns drift at dawn"
COOKIE = "authgate_refresh"

#: What a page's script can read of its storage; no refresh token may ever be there.
STORAGE_JS = """() => JSON.stringify({
  cookie: document.cookie,
  local: Object.entries(localStorage),
  session: Object.entries(sessionStorage),
})"""


def build_spa() -> Path:
    """The SPA's production build (``tsc --noEmit && vite build``) from the committed locks."""
    npm_ci(KIT_DIR, SPA_DIR)
    run(SPA_DIR, "npm", "run", "--silent", "build")
    return SPA_DIR / "dist"


@dataclass
class SpaServer:
    """Serves the build with the SPA fallback (any unknown path gets index.html), a
    ``/config.js`` of the test's choosing, and extra pages registered by the tests."""

    root: Path
    port: int = field(default_factory=free_port)
    config: dict[str, Any] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    @property
    def origin(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def other_site(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        spa = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(spa.root), **kwargs)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/config.js":
                    config = json.dumps(spa.config)
                    self._send(f"window.authgateExample = {config};\n".encode(), "text/javascript")
                elif path in spa.pages:
                    self._send(spa.pages[path].encode(), "text/html; charset=utf-8")
                elif path != "/" and (spa.root / path.lstrip("/")).is_file():
                    super().do_GET()
                else:
                    self._send((spa.root / "index.html").read_bytes(), "text/html; charset=utf-8")

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class AuthgateProcess:
    """``authgate serve`` on SQLite with mail to the SMTP sink, allowing the SPA's origin."""

    workdir: Path
    smtp_port: int
    spa_origin: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def database(self) -> Path:
        return self.workdir / "authgate.db"

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"

    def env(self) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")},
            "AUTHGATE_ENV": "test",
            "AUTHGATE_DATABASE_URL": f"sqlite+aiosqlite:///{self.database}",
            "AUTHGATE_KEYS_DIR": str(self.workdir / "keys"),
            "AUTHGATE_PUBLIC_URL": self.url,
            "AUTHGATE_FRONTEND_URL": self.spa_origin,
            "AUTHGATE_CORS_ORIGINS": json.dumps([self.spa_origin]),
            # WebAuthn treats http://localhost as a secure context: passkeys work in tests.
            "AUTHGATE_WEBAUTHN_RP_ID": "localhost",
            "AUTHGATE_WEBAUTHN_ORIGINS": json.dumps([self.spa_origin]),
            "AUTHGATE_EMAIL_BACKEND": "smtp",
            "AUTHGATE_SMTP_HOST": "127.0.0.1",
            "AUTHGATE_SMTP_PORT": str(self.smtp_port),
            "AUTHGATE_EMAIL_POLL_INTERVAL": "0.05",
            "AUTHGATE_RATE_LIMITS_ENABLED": "false",
            "AUTHGATE_HASH_WORKERS": "1",
            "AUTHGATE_LOG_LEVEL": "WARNING",
        }

    def start(self) -> None:
        cli = [sys.executable, "-m", "authgate"]
        env = self.env()
        subprocess.run(
            [*cli, "migrate"], env=env, cwd=self.workdir, check=True, capture_output=True
        )
        with self.log.open("w") as handle:
            self.process = subprocess.Popen(
                [*cli, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                cwd=self.workdir,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None

    def audit_count(self, event_type: str) -> int:
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            row = db.execute(
                "SELECT count(*) FROM audit_events WHERE type = ?", (event_type,)
            ).fetchone()
        return int(row[0])

    def api(self, origin: str | None = None) -> httpx.AsyncClient:
        """An HTTP client for the server; ``origin`` is sent as the ``Origin`` header."""
        headers = {"Origin": origin} if origin else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)


def cookie_from(response: httpx.Response) -> str | None:
    """The refresh cookie a response sets (None if it sets none; "" if it clears it)."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == COOKIE:
            return rest.split(";", 1)[0]
    return None


async def verified_user(server: AuthgateProcess, sink: SmtpSink, email: str) -> None:
    """An account with a confirmed address, made through the API (for tests about what follows)."""
    async with server.api() as api:
        response = await api.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 202, response.text
        token = (await sink.latest(email)).token("/verify-email")
        response = await api.post("/api/v1/auth/verify-email", json={"token": token})
        assert response.status_code == 200, response.text


async def link_in_mail(sink: SmtpSink, email: str, path: str, timeout: float = 10.0) -> str:
    """The link to ``path`` in the newest mail to ``email`` that has one."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for message in reversed(sink.to(email)):
            if path + "?token=" in message.text:
                return message.link(path)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {path} link in the mail to {email}")
        await asyncio.sleep(0.05)


def totp(secret: str, at: float | None = None) -> str:
    """The RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 ``secret`` at ``at``."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


async def enable_totp(server: AuthgateProcess, email: str) -> list[str]:
    """Turns TOTP on for ``email`` through the API (§8); returns its recovery codes."""
    async with server.api() as api:
        login = await api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        start = await api.post(
            "/api/v1/users/me/mfa/totp", json={"password": PASSWORD}, headers=auth
        )
        assert start.status_code == 200, start.text
        code = totp(start.json()["secret"])
        confirm = await api.post(
            "/api/v1/users/me/mfa/totp/confirm", json={"code": code}, headers=auth
        )
        assert confirm.status_code == 200, confirm.text
        codes: list[str] = confirm.json()["recovery_codes"]
        return codes
