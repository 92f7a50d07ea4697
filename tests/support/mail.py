"""A real SMTP sink (aiosmtpd) that keeps what it receives, for end-to-end tests."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.servers import free_port


@dataclass
class ReceivedMail:
    to: list[str]
    sender: str
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return "" if part is None else str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return "" if part is None else str(part.get_content())

    def link(self, path: str) -> str:
        """The first link in the plain-text body whose path is ``path`` (e.g. /verify-email)."""
        match = re.search(r"https?://\S*" + re.escape(path) + r"\?token=[A-Za-z0-9_\-]+", self.text)
        if match is None:
            raise AssertionError(f"no {path} link in: {self.text!r}")
        return match.group(0)

    def token(self, path: str) -> str:
        return self.link(path).split("token=", 1)[1]


@dataclass
class _Handler:
    received: list[ReceivedMail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received.append(ReceivedMail(list(envelope.rcpt_tos), envelope.mail_from, message))
        return "250 OK"


class SmtpSink:
    def __init__(self) -> None:
        self.port = free_port()
        self._handler = _Handler()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def clear(self) -> None:
        with self._handler.lock:
            self._handler.received.clear()

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._handler.lock:
            return list(self._handler.received)

    def to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.messages if address.lower() in (a.lower() for a in m.to)]

    async def wait_for(
        self, address: str, count: int = 1, timeout: float = 10.0
    ) -> list[ReceivedMail]:
        """Wait until ``address`` has received at least ``count`` messages; return them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"{address} received {len(self.to(address))} messages, expected {count}: "
            f"{[m.subject for m in self.messages]}"
        )

    async def latest(self, address: str, timeout: float = 10.0) -> ReceivedMail:
        return (await self.wait_for(address, 1, timeout))[-1]
