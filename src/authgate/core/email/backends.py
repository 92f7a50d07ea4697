"""Delivery backends behind one protocol: ``console`` (development), ``smtp`` and ``ses``.

A backend sends one already-rendered message and either returns the provider's message id or
raises :class:`PermanentEmailError` (this message will never go: dead-letter it) or
:class:`TransientEmailError` (try again later). Error reasons are short codes, never the
provider's free text, which may echo the recipient address.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Protocol

import aiosmtplib

from authgate.config import Settings

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sesv2.type_defs import MessageTagTypeDef, SendEmailRequestTypeDef


class EmailDeliveryError(Exception):
    """A backend could not hand the message over. ``reason`` is safe to store and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:200]


class PermanentEmailError(EmailDeliveryError):
    """Retrying will not help (rejected content, refused recipient, unverified sender)."""


class TransientEmailError(EmailDeliveryError):
    """Worth retrying (throttling, connection error, timeout, 4xx)."""


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    outbox_id: uuid.UUID
    to: str
    sender: str
    subject: str
    text: str
    html: str
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def recipient_domain(self) -> str:
        """The only part of the address that may appear in logs."""
        return self.to.rpartition("@")[2].lower()


class EmailBackend(Protocol):
    name: str

    async def send(self, message: OutgoingEmail) -> str | None:
        """Deliver one message; return the provider's message id if it gives one."""
        ...

    async def close(self) -> None: ...


class ConsoleBackend:
    """Development: print the message, links included, to stderr.

    This is the one place a link (with its raw token) is ever printed; production refuses the
    console backend (``Settings.production_problems``).
    """

    name = "console"

    async def send(self, message: OutgoingEmail) -> str | None:
        rule = "-" * 72
        sys.stderr.write(
            f"\n{rule}\nTo: {message.to}\nFrom: {message.sender}\nSubject: {message.subject}\n"
            f"{rule}\n{message.text.rstrip()}\n{rule}\n"
        )
        sys.stderr.flush()
        return f"console-{message.outbox_id}"

    async def close(self) -> None:
        return None


def build_mime(message: OutgoingEmail) -> EmailMessage:
    """text/plain + text/html alternative. The Message-ID is derived from the outbox id, so a
    retried message carries the same id and receiving systems can recognise a duplicate."""
    mime = EmailMessage()
    mime["From"] = message.sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(localtime=False)
    domain = message.sender.rpartition("@")[2].strip(">").strip() or "authgate.local"
    mime["Message-ID"] = f"<{message.outbox_id}@{domain}>"
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    return mime


class SmtpBackend:
    name = "smtp"

    def __init__(self, settings: Settings) -> None:
        self._host = settings.smtp_host
        self._port = settings.smtp_port
        self._username = settings.smtp_username
        self._password = settings.smtp_password
        self._tls = settings.smtp_tls
        self._timeout = settings.smtp_timeout

    async def send(self, message: OutgoingEmail) -> str | None:
        mime = build_mime(message)
        password = self._password.get_secret_value() if self._password is not None else None
        try:
            await aiosmtplib.send(
                mime,
                hostname=self._host,
                port=self._port,
                username=self._username if self._username else None,
                password=password if self._username else None,
                use_tls=self._tls == "tls",
                start_tls=self._tls == "starttls",
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            reason = f"smtp recipient refused {codes[0] if codes else ''}".strip()
            if codes and all(500 <= code < 600 for code in codes):
                raise PermanentEmailError(reason) from None
            raise TransientEmailError(reason) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            # A configuration problem, not the message's fault: keep it for when it is fixed.
            raise TransientEmailError(f"smtp authentication failed {exc.code}") from None
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"smtp {type(exc).__name__} {exc.code}"
            if 500 <= exc.code < 600:
                raise PermanentEmailError(reason) from None
            raise TransientEmailError(reason) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Connection refused/reset, timeouts, disconnects, STARTTLS unsupported.
            raise TransientEmailError(f"smtp {type(exc).__name__}") from None
        return str(mime["Message-ID"])

    async def close(self) -> None:
        return None


#: SESv2 error codes that will fail the same way on every retry.
SES_PERMANENT_CODES = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "BadRequestException",
        "InvalidParameterValue",
    }
)


def classify_ses_error(exc: Exception) -> EmailDeliveryError:
    """Map a boto error to permanent/transient. Unknown codes are transient: the attempt
    limit still ends them, and an operator fix (quota, suspension) can save them."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        if code in SES_PERMANENT_CODES:
            return PermanentEmailError(f"ses {code}")
        return TransientEmailError(f"ses {code}")
    return TransientEmailError(f"ses {type(exc).__name__}")


class SesBackend:
    """Amazon SES v2 ``SendEmail`` (Simple content). boto3 is blocking, so every call runs in a
    small bounded thread pool off the event loop. Retries are the outbox's job: botocore makes
    at most two attempts with short timeouts so a call never outlives the claim lease."""

    name = "ses"

    def __init__(self, settings: Settings, *, max_workers: int = 4) -> None:
        # boto3 and botocore cost a process ~20 MB: imported only when SES is the backend.
        import boto3
        from botocore.config import Config as BotoConfig
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors: tuple[type[Exception], ...] = (ClientError, BotoCoreError)
        self._configuration_set = settings.ses_configuration_set
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ses")
        self._client: SESV2Client = boto3.client(
            "sesv2",
            region_name=settings.ses_region,
            endpoint_url=settings.ses_endpoint_url,
            config=BotoConfig(
                retries={"mode": "standard", "total_max_attempts": 2},
                connect_timeout=5,
                read_timeout=15,
                max_pool_connections=max_workers,
            ),
        )

    def _request(self, message: OutgoingEmail) -> SendEmailRequestTypeDef:
        tags: list[MessageTagTypeDef] = [
            {"Name": name, "Value": value} for name, value in message.tags.items()
        ]
        request: SendEmailRequestTypeDef = {
            "FromEmailAddress": message.sender,
            "Destination": {"ToAddresses": [message.to]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": message.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": message.text, "Charset": "UTF-8"},
                        "Html": {"Data": message.html, "Charset": "UTF-8"},
                    },
                }
            },
        }
        if tags:
            request["EmailTags"] = tags
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        return request

    def _send_blocking(self, message: OutgoingEmail) -> str | None:
        try:
            response = self._client.send_email(**self._request(message))
        except self._errors as exc:
            raise classify_ses_error(exc) from None
        return response.get("MessageId")

    async def send(self, message: OutgoingEmail) -> str | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._send_blocking, message)

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._client.close()


def make_backend(settings: Settings) -> EmailBackend:
    """The backend AUTHGATE_EMAIL_BACKEND names."""
    if settings.email_backend == "ses":
        return SesBackend(settings)
    if settings.email_backend == "smtp":
        return SmtpBackend(settings)
    return ConsoleBackend()
