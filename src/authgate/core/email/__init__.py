"""Transactional email: templates, the outbox, delivery backends and the dispatcher.

Write mail with :meth:`EmailService.enqueue` inside the unit of work that causes it; an
:class:`EmailDispatcher` (inside ``serve`` or ``authgate worker``) delivers it afterwards.
"""

from authgate.core.email.backends import (
    ConsoleBackend,
    EmailBackend,
    EmailDeliveryError,
    OutgoingEmail,
    PermanentEmailError,
    SesBackend,
    SmtpBackend,
    TransientEmailError,
    make_backend,
)
from authgate.core.email.dispatcher import EmailDispatcher, dead_letters, requeue_dead, run_worker
from authgate.core.email.service import (
    OUTBOX_DIRTY,
    EmailHeaderError,
    EmailJob,
    EmailService,
    EmailTemplate,
    RenderedEmail,
)

__all__ = [
    "OUTBOX_DIRTY",
    "ConsoleBackend",
    "EmailBackend",
    "EmailDeliveryError",
    "EmailDispatcher",
    "EmailHeaderError",
    "EmailJob",
    "EmailService",
    "EmailTemplate",
    "OutgoingEmail",
    "PermanentEmailError",
    "RenderedEmail",
    "SesBackend",
    "SmtpBackend",
    "TransientEmailError",
    "dead_letters",
    "make_backend",
    "requeue_dead",
    "run_worker",
]
