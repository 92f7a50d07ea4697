"""EmailService: render templates and write messages to the transactional outbox.

Callers never send mail. They call :meth:`EmailService.enqueue` inside the unit of work that
causes the message; the outbox row commits (or rolls back) with that change, and the
:class:`~authgate.core.email.dispatcher.EmailDispatcher` delivers it afterwards.

The context often holds a link with a raw one-time token, so it is stored as JSON encrypted
with :class:`EncryptionService`, bound (associated data) to the row id and template name, and
wiped once the message is sent. No column ever holds a token in the clear.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jinja2 import TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.config import Settings
from authgate.core.email.backends import OutgoingEmail
from authgate.core.email.templates import make_environment
from authgate.core.metrics import EMAIL_QUEUED
from authgate.core.security.crypto import EncryptionService
from authgate.models.email_outbox import EmailOutbox, OutboxStatus

PRODUCT_NAME = "authgate"

#: ``AsyncSession.info`` key set when a session queued mail; the request layer calls
#: ``dispatcher.notify()`` after committing such a session.
OUTBOX_DIRTY = "outbox_dirty"


class EmailTemplate(StrEnum):
    verify_email = "verify_email"
    welcome = "welcome"
    password_reset = "password_reset"  # noqa: S105 (a template name)
    password_changed = "password_changed"  # noqa: S105
    email_change_confirm = "email_change_confirm"
    email_change_notice = "email_change_notice"
    register_existing = "register_existing"
    session_reuse_revoked = "session_reuse_revoked"
    oauth_link_started = "oauth_link_started"
    oauth_linked = "oauth_linked"


class EmailHeaderError(ValueError):
    """A header value (recipient, sender, subject) contains CR or LF: header injection."""


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def check_header(name: str, value: str) -> str:
    """Refuse CR/LF (and NUL) in a header value; return it unchanged otherwise."""
    if any(ch in value for ch in ("\r", "\n", "\x00")):
        raise EmailHeaderError(f"{name} contains a line break")
    return value


def associated_data(outbox_id: uuid.UUID, template: str) -> bytes:
    """Binds a payload ciphertext to its row and template: copied elsewhere, it won't decrypt."""
    return outbox_id.bytes + template.encode()


class EmailService:
    def __init__(
        self,
        settings: Settings,
        encryption: EncryptionService,
        *,
        environment: SandboxedEnvironment | None = None,
    ) -> None:
        self._settings = settings
        self._encryption = encryption
        self._env = environment or make_environment()

    @property
    def sender(self) -> str:
        return check_header("from", self._settings.email_from)

    def render(self, template: EmailTemplate, context: Mapping[str, Any]) -> RenderedEmail:
        """Render subject, text and HTML; the subject is one line or ``EmailHeaderError``.

        Raises ``ValueError`` for an unknown template and ``jinja2.UndefinedError`` for a
        missing context key.
        """
        name = EmailTemplate(template).value
        values = {
            **context,
            "product_name": PRODUCT_NAME,
            "frontend_url": self._settings.frontend_url,
        }
        try:
            subject = self._env.get_template(f"{name}.subject.txt").render(values).strip()
            text = self._env.get_template(f"{name}.txt").render(values)
            html = self._env.get_template(f"{name}.html").render(values)
        except TemplateNotFound as exc:
            raise ValueError(f"email template {name!r} is incomplete") from exc
        return RenderedEmail(subject=check_header("subject", subject), text=text, html=html)

    async def enqueue(
        self,
        db: AsyncSession,
        *,
        to: str,
        template: EmailTemplate,
        context: Mapping[str, Any],
        user_id: uuid.UUID | None = None,
    ) -> None:
        """Add an outbox row to the caller's session; it commits with the caller's change.

        Renders once first so a broken template or a header injection fails the request
        (``EmailHeaderError``) instead of dead-lettering later. Neither flushes nor commits.
        """
        template = EmailTemplate(template)
        check_header("to", to)
        _ = self.sender
        self.render(template, context)
        payload = json.dumps(dict(context), default=str, separators=(",", ":")).encode()
        outbox_id = uuid.uuid4()
        db.add(
            EmailOutbox(
                id=outbox_id,
                user_id=user_id,
                to_address=to,
                template=template.value,
                payload_ciphertext=self._encryption.encrypt(
                    payload, associated_data(outbox_id, template.value)
                ),
                payload_key_id=self._encryption.current_kid,
                status=OutboxStatus.pending,
            )
        )
        db.info[OUTBOX_DIRTY] = True
        EMAIL_QUEUED.labels(template=template.value).inc()

    def context_of(self, row: EmailOutbox) -> dict[str, Any]:
        """Decrypt a row's context (``DecryptionError`` if wiped, tampered or key gone)."""
        if row.payload_ciphertext is None:
            raise ValueError("the outbox payload was already wiped")
        plain = self._encryption.decrypt(
            row.payload_ciphertext, associated_data(row.id, row.template)
        )
        value = json.loads(plain)
        if not isinstance(value, dict):
            raise ValueError("the outbox payload is not an object")
        return value

    def build(self, row: EmailOutbox) -> OutgoingEmail:
        """The message a backend sends for an outbox row (decrypted and rendered now)."""
        template = EmailTemplate(row.template)
        rendered = self.render(template, self.context_of(row))
        return OutgoingEmail(
            outbox_id=row.id,
            to=check_header("to", row.to_address),
            sender=self.sender,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            tags={"template": template.value},
        )
