"""Every template renders with the context its callers pass, and user data stays data."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jinja2 import DictLoader, UndefinedError
from jinja2.exceptions import SecurityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authgate.core.email import EmailHeaderError, EmailService, EmailTemplate
from authgate.core.email.templates import TEMPLATES_DIR, make_environment
from authgate.core.security.crypto import EncryptionService, new_key_spec, parse_key_ring
from tests.support.emails import base_settings

LINK = "https://app.authgate.test/verify-email?token=agv_abc123"
INJECTION = "{{7*7}}<script>alert(1)</script>"

CONTEXTS: dict[EmailTemplate, dict[str, Any]] = {
    # Mail to a not yet verified address carries no text of the user's choosing: no name.
    EmailTemplate.verify_email: {"link": LINK, "expires_hours": 24},
    EmailTemplate.verify_registration: {
        "link": LINK,
        "expires_hours": 24,
        "at": "2026-12-07 18:00 UTC",
        "ip_address": "203.0.113.9",
        "user_agent": "Firefox",
    },
    EmailTemplate.welcome: {"name": "Ada"},
    EmailTemplate.password_reset: {"name": None, "link": LINK, "expires_minutes": 30},
    EmailTemplate.password_changed: {"name": "Ada"},
    EmailTemplate.email_change_confirm: {
        "link": LINK,
        "new_email": "new@example.com",
        "expires_hours": 24,
    },
    EmailTemplate.email_change_notice: {"name": "Ada", "new_email": "new@example.com"},
    EmailTemplate.email_changed: {"name": "Ada", "new_email": "new@example.com"},
    EmailTemplate.register_existing: {
        "name": "Ada",
        "login_url": "https://app.authgate.test/login",
        "reset_url": "https://app.authgate.test/reset-password",
    },
    EmailTemplate.session_reuse_revoked: {
        "name": "Ada",
        "ip_address": "203.0.113.9",
        "user_agent": "Firefox",
    },
    EmailTemplate.oauth_link_started: {"name": "Ada", "provider": "github"},
    EmailTemplate.oauth_linked: {"name": "Ada", "provider": "github"},
    EmailTemplate.mfa_enabled: {"name": "Ada"},
    EmailTemplate.mfa_disabled: {"name": "Ada", "by_admin": False},
    EmailTemplate.mfa_recovery_codes: {"name": "Ada"},
    EmailTemplate.passkey_added: {"name": "Ada", "passkey_name": "Laptop"},
    EmailTemplate.new_sign_in: {
        "name": "Ada",
        "at": "2026-12-07 18:00 UTC",
        "ip_address": "203.0.113.9",
        "user_agent": "Firefox",
        "reset_url": "https://app.authgate.test/forgot-password",
    },
}


def test_password_changed_lists_connected_providers_when_given() -> None:
    context = {"name": "Ada", "providers": ["github", "google"]}
    rendered = _service().render(EmailTemplate.password_changed, context)
    for body in (rendered.text, rendered.html):
        assert "github" in body and "google" in body
    plain = _service().render(EmailTemplate.password_changed, {"name": "Ada"})
    assert "connected" not in plain.text


def _service(**environment: Any) -> EmailService:
    settings = base_settings("sqlite+aiosqlite:///:memory:")
    keys = parse_key_ring(new_key_spec("k1"))
    return EmailService(settings, EncryptionService(keys), **environment)


def test_every_template_has_its_three_files() -> None:
    for template in EmailTemplate:
        for suffix in (".subject.txt", ".txt", ".html"):
            assert (TEMPLATES_DIR / f"{template}{suffix}").is_file(), f"{template}{suffix}"


@pytest.mark.parametrize("template", list(EmailTemplate))
def test_renders_with_documented_context(template: EmailTemplate) -> None:
    rendered = _service().render(template, CONTEXTS[template])
    assert rendered.subject
    assert "\n" not in rendered.subject
    assert "authgate" in rendered.text
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    for value in CONTEXTS[template].values():
        if isinstance(value, str) and value.startswith("https://"):
            assert value in rendered.text
            assert f'href="{value}"' in rendered.html


@pytest.mark.parametrize(("template", "key"), [(t, k) for t in EmailTemplate for k in CONTEXTS[t]])
def test_missing_context_key_is_an_error(template: EmailTemplate, key: str) -> None:
    context = dict(CONTEXTS[template])
    context.pop(key)
    with pytest.raises(UndefinedError):
        _service().render(template, context)


@pytest.mark.parametrize(
    "template",
    [
        EmailTemplate.verify_email,
        EmailTemplate.verify_registration,
        EmailTemplate.email_change_confirm,
    ],
)
def test_mail_to_an_unverified_address_never_shows_a_name(template: EmailTemplate) -> None:
    """Nothing a registrant typed reaches a mailbox nobody has proven (no relay of free text)."""
    rendered = _service().render(template, {**CONTEXTS[template], "name": "Buy cheap pills"})
    assert "pills" not in rendered.text + rendered.html + rendered.subject


def test_name_is_never_evaluated_and_escaped_in_html() -> None:
    context = {**CONTEXTS[EmailTemplate.password_changed], "name": INJECTION}
    rendered = _service().render(EmailTemplate.password_changed, context)
    assert INJECTION in rendered.text
    assert "49" not in rendered.text
    assert "<script>" not in rendered.html
    assert "{{7*7}}&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html


def test_new_sign_in_shows_the_client_as_data_and_no_secret() -> None:
    """The User-Agent is whatever the client sent: shown verbatim in text, escaped in HTML."""
    context = {**CONTEXTS[EmailTemplate.new_sign_in], "user_agent": INJECTION}
    rendered = _service().render(EmailTemplate.new_sign_in, context)
    assert INJECTION in rendered.text
    assert "<script>" not in rendered.html
    assert "{{7*7}}&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    for body in (rendered.text, rendered.html):
        words = " ".join(re.sub(r"<[^>]+>", "", body).split())
        assert "If this was not you, reset your password" in words
        assert "token" not in body
        assert "2026-12-07 18:00 UTC" in body and "203.0.113.9" in body


def test_sandbox_blocks_attribute_escapes_in_template_source() -> None:
    env = make_environment(DictLoader({"x.txt": "{{ ''.__class__.__mro__ }}"}))
    with pytest.raises(SecurityError, match=r"unsafe"):
        env.get_template("x.txt").render()


def test_subject_with_line_break_is_refused() -> None:
    loader = DictLoader(
        {
            "welcome.subject.txt": "Hello {{ name }}",
            "welcome.txt": "hi",
            "welcome.html": "<p>hi</p>",
        }
    )
    service = _service(environment=make_environment(loader))
    assert service.render(EmailTemplate.welcome, {"name": "Ada"}).subject == "Hello Ada"
    with pytest.raises(EmailHeaderError):
        service.render(EmailTemplate.welcome, {"name": "Ada\r\nBcc: evil@example.com"})


@pytest.mark.parametrize(
    "to", ["victim@example.com\r\nBcc: evil@example.com", "victim@example.com\nX: y"]
)
async def test_header_injection_in_recipient_adds_no_row(
    to: str, sessionmaker: async_sessionmaker[AsyncSession], service: EmailService
) -> None:
    async with sessionmaker() as db:
        with pytest.raises(EmailHeaderError):
            await service.enqueue(
                db, to=to, template=EmailTemplate.welcome, context={"name": "Ada"}
            )
        assert not db.new
        assert "outbox_dirty" not in db.info


async def test_header_injection_in_subject_adds_no_row(
    sessionmaker: async_sessionmaker[AsyncSession], email_db: Any
) -> None:
    loader = DictLoader(
        {"welcome.subject.txt": "Hi {{ name }}", "welcome.txt": "x", "welcome.html": "x"}
    )
    keys = parse_key_ring(email_db.encryption_keys.get_secret_value())
    service = EmailService(email_db, EncryptionService(keys), environment=make_environment(loader))
    async with sessionmaker() as db:
        with pytest.raises(EmailHeaderError):
            await service.enqueue(
                db,
                to="a@example.com",
                template=EmailTemplate.welcome,
                context={"name": "x\nBcc: evil@example.com"},
            )
        assert not db.new


def test_sender_with_line_break_is_refused() -> None:
    settings = base_settings("sqlite+aiosqlite:///:memory:", email_from="a@b.c\r\nBcc: d@e.f")
    service = EmailService(settings, EncryptionService(parse_key_ring(new_key_spec("k"))))
    with pytest.raises(EmailHeaderError):
        _ = service.sender
