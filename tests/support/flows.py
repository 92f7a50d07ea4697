"""End-to-end steps through the public API (register, verify, log in), for the tests that are
about those steps. A test that only needs a signed-in account uses ``tests.support.factories``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.mail import SmtpSink

TEST_PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Flows:
    """Small end-to-end steps through the public API, reading mail from the SMTP sink."""

    def __init__(self, client: httpx.AsyncClient, sink: SmtpSink) -> None:
        self.client = client
        self.sink = sink
        self._n = 0

    def new_email(self) -> str:
        self._n += 1
        return f"user{self._n}@example.com"

    async def register(
        self, email: str, password: str = TEST_PASSWORD, name: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"email": email, "password": password}
        if name is not None:
            body["name"] = name
        return await self.client.post("/api/v1/auth/register", json=body)

    async def verification_token(self, email: str, count: int = 1) -> str:
        mails = await self.sink.wait_for(email, count)
        verify = [m for m in mails if "/verify-email?token=" in m.text]
        assert verify, [m.subject for m in mails]
        return verify[-1].token("/verify-email")

    async def verify(self, email: str) -> None:
        token = await self.verification_token(email)
        response = await self.client.post("/api/v1/auth/verify-email", json={"token": token})
        assert response.status_code == 200, response.text

    async def login(self, email: str, password: str = TEST_PASSWORD) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )

    async def signed_up(
        self, email: str | None = None, password: str = TEST_PASSWORD, name: str | None = None
    ) -> Account:
        """Register, verify from the mail, log in: the whole HTTP path (see ``Factory.account``
        for the cheap way to a signed-in account)."""
        email = email or self.new_email()
        response = await self.register(email, password, name)
        assert response.status_code == 202, response.text
        await self.verify(email)
        login = await self.login(email, password)
        assert login.status_code == 200, login.text
        body = login.json()
        return Account(email, password, body["access_token"], body["refresh_token"])
