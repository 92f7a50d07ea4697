"""``AUTHGATE_WEBHOOKS``: what is accepted, what is refused, and that a secret never shows."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from pydantic import ValidationError

from authgate.config import Settings
from authgate.webhooks import WebhookEvent
from authgate.webhooks.endpoints import Endpoint, endpoint_key
from tests.unit.test_config import SAFE

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def hooks(**entry: Any) -> str:
    return json.dumps([{"url": "https://hooks.example.com/authgate", "secret": SECRET, **entry}])


def test_an_endpoint_gets_every_event_unless_it_lists_some() -> None:
    settings = Settings(_env_file=None, webhooks=hooks())
    (endpoint,) = settings.webhooks
    assert endpoint.subscribed == frozenset(WebhookEvent)
    assert endpoint.secret.get_secret_value() == SECRET
    listed = Settings(_env_file=None, webhooks=hooks(events=["user.created", "session.revoked"]))
    assert listed.webhooks[0].subscribed == {
        WebhookEvent.user_created,
        WebhookEvent.session_revoked,
    }
    assert Settings(_env_file=None).webhooks == []
    assert Settings(_env_file=None, webhooks="").webhooks == []


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_WEBHOOKS", hooks(events=["user.deleted"]))
    monkeypatch.setenv("AUTHGATE_WEBHOOK_TIMEOUT", "2.5")
    settings = Settings(_env_file=None)
    assert settings.webhooks[0].subscribed == {WebhookEvent.user_deleted}
    assert settings.webhook_timeout == 2.5
    assert settings.webhook_retry_base_seconds == 1.0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"secret": "s3cr3t-without-prefix-0123456789abcdef"}, "starts with whsec_"),
        ({"secret": "whsec_not*base64!"}, "followed by base64"),
        ({"secret": "whsec_" + base64.b64encode(os.urandom(16)).decode()}, "24 to 64"),
        ({"secret": "whsec_" + base64.b64encode(os.urandom(65)).decode()}, "24 to 64"),
        ({"events": ["user.created", "user.exploded"]}, "unknown webhook events"),
        ({"events": []}, "non-empty list"),
        ({"url": "ftp://hooks.example.com/x"}, "absolute http"),
        ({"url": "/relative"}, "absolute http"),
        ({"url": "https://hooks.example.com/x#frag"}, "without a fragment"),
        ({"extra": 1}, "Extra inputs"),
    ],
)
def test_refused(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        Settings(_env_file=None, webhooks=hooks(**entry))
    text = str(refused.value)
    assert SECRET not in text
    if "secret" in entry:
        assert entry["secret"] not in text


def test_not_json_and_duplicate_urls_are_refused_without_echoing_a_secret() -> None:
    with pytest.raises(ValidationError, match="JSON list") as refused:
        Settings(_env_file=None, webhooks=hooks()[:-3])
    assert SECRET not in str(refused.value)
    twice = json.dumps([{"url": "https://h.example/x", "secret": SECRET}] * 2)
    with pytest.raises(ValidationError, match="once"):
        Settings(_env_file=None, webhooks=twice)


def test_secrets_never_show() -> None:
    settings = Settings(_env_file=None, webhooks=hooks())
    endpoint = Endpoint.of(settings.webhooks[0])
    for text in (repr(settings), str(settings.webhooks), repr(endpoint), endpoint.name):
        assert SECRET not in text
        assert SECRET.removeprefix("whsec_") not in text
    assert endpoint.key == endpoint_key("https://hooks.example.com/authgate")
    assert endpoint.name == f"hooks.example.com#{endpoint.key[:6]}"


def test_production_refuses_http_endpoints_only() -> None:
    secure = Settings(**SAFE, webhooks=hooks())
    assert secure.production_problems() == []
    plain = json.dumps([{"url": "http://hooks.example.com/x?key=abc", "secret": SECRET}])
    problems = Settings(**SAFE, webhooks=plain).production_problems()
    assert problems == ["AUTHGATE_WEBHOOKS: endpoint 1 (hooks.example.com) is not https"]
