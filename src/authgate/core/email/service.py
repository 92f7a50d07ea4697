"""EmailService: render templates and write messages to the transactional outbox.

Callers never send mail. They call :meth:`EmailService.enqueue` inside the unit of work that
causes the message; the outbox row commits (or rolls back) with that change, and the
:class:`~authgate.core.email.dispatcher.EmailDispatcher` delivers it afterwards.

**Per-recipient limit.** ``enqueue`` counts every message to an address on the named limit
``email_recipient`` (default ``10/hour``, keyed on the case-folded address). Beyond it, a
message the recipient did not necessarily ask for (a verification or reset link, an
email-change confirmation, a "you already have an account" notice, a welcome) is dropped and
logged (``email.dropped``), never failing the request, so the service cannot be used to flood
a mailbox and the caller's answer stays the same. Notices about a change to the recipient's own
account (``SECURITY_NOTICES``) are always queued and never counted: losing one silently would
hide an attack from the owner. A store that cannot be reached fails the request (503) rather
than queue unchecked.

The context often holds a link with a raw one-time token, so it is stored as JSON encrypted
with :class:`EncryptionService`, bound (associated data) to the row id and template name, and
wiped once the message is sent. No column ever holds a token in the clear.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jinja2 import TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.config import Settings
from authgate.core.email.backends import OutgoingEmail
from authgate.core.email.templates import make_environment
from authgate.core.errors import RateLimited
from authgate.core.limits import Limit
from authgate.core.metrics import EMAIL_DROPPED, EMAIL_QUEUED
from authgate.core.ratelimit import RateLimiter
from authgate.core.security.crypto import EncryptionService
from authgate.models.email_outbox import EmailOutbox, OutboxStatus

logger = logging.getLogger("authgate.email")

PRODUCT_NAME = "authgate"

#: ``AsyncSession.info`` key set when a session queued mail; the request layer calls
#: ``dispatcher.notify()`` after committing such a session.
OUTBOX_DIRTY = "outbox_dirty"


class EmailTemplate(StrEnum):
    verify_email = "verify_email"
    verify_registration = "verify_registration"
    welcome = "welcome"
    password_reset = "password_reset"  # noqa: S105 (a template name)
    password_changed = "password_changed"  # noqa: S105
    email_change_confirm = "email_change_confirm"
    email_change_notice = "email_change_notice"
    register_existing = "register_existing"
    session_reuse_revoked = "session_reuse_revoked"
    email_changed = "email_changed"
    oauth_link_started = "oauth_link_started"
    oauth_linked = "oauth_linked"
    mfa_enabled = "mfa_enabled"
    mfa_disabled = "mfa_disabled"
    mfa_recovery_codes = "mfa_recovery_codes"
    new_sign_in = "new_sign_in"
    passkey_added = "passkey_added"


#: Mail about something that happened to the recipient's own, verified account: never limited.
SECURITY_NOTICES = frozenset(
    {
        EmailTemplate.password_changed,
        EmailTemplate.email_change_notice,
        EmailTemplate.email_changed,
        EmailTemplate.session_reuse_revoked,
        EmailTemplate.oauth_link_started,
        EmailTemplate.oauth_linked,
        EmailTemplate.mfa_enabled,
        EmailTemplate.mfa_disabled,
        EmailTemplate.mfa_recovery_codes,
        EmailTemplate.new_sign_in,
        EmailTemplate.passkey_added,
    }
)
#: The named limit on the other messages per recipient address.
RECIPIENT_LIMIT = Limit.email_recipient


class EmailJob(StrEnum):
    """A deferred step that may end in a mail, written to the outbox like one.

    The request that causes it only writes the row, the same for every address, so its answer
    and its time say nothing about whether an account exists; the dispatcher runs the step
    (look the account up, issue a link, queue the mail) after the response.
    """

    password_reset_request = "job:password_reset_request"  # noqa: S105 (a job name)
    verification_resend = "job:verification_resend"


#: What a job does: runs in the dispatcher's own transaction with the row's (decrypted) context.
JobHandler = Callable[[AsyncSession, dict[str, Any]], Awaitable[None]]


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
    """Writes mail and jobs to the outbox in the caller's transaction, renders templates and
    knows the job handlers; the dispatcher delivers.
    """

    def __init__(
        self,
        settings: Settings,
        encryption: EncryptionService,
        *,
        environment: SandboxedEnvironment | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._settings = settings
        self._encryption = encryption
        self._limiter = limiter
        self._env = environment or make_environment()
        self._jobs: dict[str, JobHandler] = {}

    def register_job(self, job: EmailJob, handler: JobHandler) -> None:
        """Register the handler the dispatcher runs for outbox jobs of kind ``job``.

        Args:
            job: The job kind.
            handler: Called with the job's transaction and its decrypted context.
        """
        self._jobs[EmailJob(job).value] = handler

    def job_handler(self, name: str) -> JobHandler | None:
        """The handler of an outbox row that is a job (None for a mail)."""
        return self._jobs.get(name)

    @staticmethod
    def is_job(name: str) -> bool:
        """Whether an outbox row's template column names a job rather than a mail.

        Args:
            name: The ``template`` column of an outbox row.

        Returns:
            True for ``job:…`` kinds.
        """
        return name in EmailJob._value2member_map_

    @property
    def sender(self) -> str:
        """The ``From`` address (``AUTHGATE_EMAIL_FROM``), checked to be one header line."""
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
        Beyond the per-recipient limit a message that is not a security notice is dropped
        (module docstring).
        """
        template = EmailTemplate(template)
        check_header("to", to)
        _ = self.sender
        self.render(template, context)
        if not await self._within_recipient_limit(to, template):
            return
        self._add_row(db, template.value, context, to=to, user_id=user_id)
        EMAIL_QUEUED.labels(template=template.value).inc()

    def _add_row(
        self,
        db: AsyncSession,
        name: str,
        context: Mapping[str, Any],
        *,
        to: str,
        user_id: uuid.UUID | None,
    ) -> None:
        """One pending outbox row, its context encrypted and bound to the row and its name."""
        payload = json.dumps(dict(context), default=str, separators=(",", ":")).encode()
        outbox_id = uuid.uuid4()
        db.add(
            EmailOutbox(
                id=outbox_id,
                user_id=user_id,
                to_address=to,
                template=name,
                payload_ciphertext=self._encryption.encrypt(
                    payload, associated_data(outbox_id, name)
                ),
                payload_key_id=self._encryption.current_kid,
                status=OutboxStatus.pending,
            )
        )
        db.info[OUTBOX_DIRTY] = True

    async def _within_recipient_limit(self, to: str, template: EmailTemplate) -> bool:
        if self._limiter is None or template in SECURITY_NOTICES:
            return True
        try:
            await self._limiter.per_address(RECIPIENT_LIMIT, to.strip())
        except RateLimited:
            EMAIL_DROPPED.labels(template=template.value).inc()
            logger.warning(
                "email.dropped",
                extra={
                    "template": template.value,
                    "recipient_domain": to.rpartition("@")[2].lower(),
                    "reason": RECIPIENT_LIMIT,
                },
            )
            return False
        return True

    def enqueue_job(self, db: AsyncSession, job: EmailJob, context: Mapping[str, Any]) -> None:
        """Add a job row (context encrypted like a mail's); it commits with the caller's change."""
        self._add_row(db, EmailJob(job).value, context, to="", user_id=None)

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
