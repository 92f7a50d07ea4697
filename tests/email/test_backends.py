"""Backends against the real things: moto's SES server and an aiosmtpd sink."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from authgate.core.email import (
    ConsoleBackend,
    OutgoingEmail,
    PermanentEmailError,
    SesBackend,
    SmtpBackend,
    TransientEmailError,
    make_backend,
)
from authgate.core.email.backends import classify_ses_error
from tests.support.emails import SENDER, base_settings, moto_messages, unique_address
from tests.support.mail import SmtpSink
from tests.support.servers import MotoServer, free_port

LINK = "https://app.authgate.test/verify-email?token=agv_backendtest"


def _message(to: str, sender: str = SENDER) -> OutgoingEmail:
    return OutgoingEmail(
        outbox_id=uuid.uuid4(),
        to=to,
        sender=sender,
        subject="Confirm your email address",
        text=f"Open {LINK}\n",
        html=f'<p><a href="{LINK}">Confirm</a></p>',
        tags={"template": "verify_email"},
    )


def test_make_backend_follows_the_setting(aws_env: None) -> None:
    assert isinstance(
        make_backend(base_settings("sqlite://", email_backend="console")), ConsoleBackend
    )
    assert isinstance(make_backend(base_settings("sqlite://", email_backend="smtp")), SmtpBackend)
    assert isinstance(make_backend(base_settings("sqlite://", email_backend="ses")), SesBackend)


async def test_console_prints_the_message_with_its_link(capsys: pytest.CaptureFixture[str]) -> None:
    message = _message("ada@example.com")
    assert await ConsoleBackend().send(message) == f"console-{message.outbox_id}"
    err = capsys.readouterr().err
    assert "To: ada@example.com" in err
    assert "Subject: Confirm your email address" in err
    assert LINK in err


async def test_smtp_delivers_text_and_html(smtp_sink: SmtpSink) -> None:
    backend = SmtpBackend(
        base_settings("sqlite://", smtp_host="127.0.0.1", smtp_port=smtp_sink.port)
    )
    to = unique_address()
    message = _message(to)
    message_id = await backend.send(message)
    received = await smtp_sink.latest(to)
    assert received.sender == SENDER
    assert received.subject == "Confirm your email address"
    assert received.link("/verify-email") == LINK
    assert f'href="{LINK}"' in received.html
    assert received.message["Message-ID"] == message_id == f"<{message.outbox_id}@authgate.test>"


async def test_smtp_unreachable_is_transient() -> None:
    backend = SmtpBackend(
        base_settings("sqlite://", smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout=2)
    )
    with pytest.raises(TransientEmailError) as info:
        await backend.send(_message("ada@example.com"))
    assert "ada" not in info.value.reason


async def test_ses_sends_through_moto(moto: MotoServer) -> None:
    backend = SesBackend(base_settings("sqlite://", email_backend="ses", ses_endpoint_url=moto.url))
    try:
        to = unique_address()
        message_id = await backend.send(_message(to))
    finally:
        await backend.close()
    assert message_id
    [stored] = [m for m in await moto_messages(moto.url) if to in m["destinations"]["ToAddresses"]]
    assert stored["id"] == message_id
    assert stored["source"] == SENDER
    assert stored["subject"] == "Confirm your email address"
    assert LINK in stored["body"]


async def test_ses_unverified_sender_is_permanent(moto: MotoServer) -> None:
    backend = SesBackend(base_settings("sqlite://", email_backend="ses", ses_endpoint_url=moto.url))
    try:
        with pytest.raises(PermanentEmailError) as info:
            await backend.send(_message(unique_address(), sender="stranger@unverified.test"))
    finally:
        await backend.close()
    assert info.value.reason == "ses MessageRejected"


async def test_ses_unreachable_is_transient(aws_env: None) -> None:
    backend = SesBackend(
        base_settings(
            "sqlite://", email_backend="ses", ses_endpoint_url=f"http://127.0.0.1:{free_port()}"
        )
    )
    try:
        with pytest.raises(TransientEmailError):
            await backend.send(_message(unique_address()))
    finally:
        await backend.close()


@pytest.mark.parametrize(
    ("code", "permanent"),
    [
        ("MessageRejected", True),
        ("MailFromDomainNotVerifiedException", True),
        ("BadRequestException", True),
        ("TooManyRequestsException", False),
        ("LimitExceededException", False),
        ("ThrottlingException", False),
        ("AccountSuspendedException", False),
        ("InternalFailure", False),
    ],
)
def test_ses_error_classification(code: str, permanent: bool) -> None:
    error = ClientError({"Error": {"Code": code, "Message": "to bob@example.com"}}, "SendEmail")
    classified = classify_ses_error(error)
    assert isinstance(classified, PermanentEmailError if permanent else TransientEmailError)
    assert "bob" not in classified.reason
    assert isinstance(
        classify_ses_error(EndpointConnectionError(endpoint_url="http://x")), TransientEmailError
    )


def test_ses_request_carries_configuration_set_and_tags(aws_env: None) -> None:
    backend = SesBackend(
        base_settings("sqlite://", email_backend="ses", ses_configuration_set="transactional")
    )
    request = backend._request(_message("ada@example.com"))
    assert request["ConfigurationSetName"] == "transactional"
    assert request["EmailTags"] == [{"Name": "template", "Value": "verify_email"}]
    simple = request["Content"]["Simple"]
    assert LINK in simple["Body"]["Text"]["Data"]
    assert LINK in simple["Body"]["Html"]["Data"]
