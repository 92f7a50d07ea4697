"""docs/api.md §3.11 holds: every event is documented, and its example receiver, run as
written, accepts a signed event once, ignores a repeat and refuses a forged one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate.webhooks import WebhookEvent, user_data
from authgate.webhooks.endpoints import Endpoint
from authgate.webhooks.service import encode_body, new_message_id
from tests.support.webhooks import new_secret

ROOT = Path(__file__).resolve().parent.parent.parent


def section() -> str:
    text = (ROOT / "docs" / "api.md").read_text()
    return text.split("### 3.11 Webhooks", 1)[1].split("\n## ", 1)[0]


def test_every_event_is_documented() -> None:
    table = section().split("| event |", 1)[1].split("\n\n", 1)[0]
    for event in WebhookEvent:
        assert f"`{event.value}`" in table, event


async def test_the_example_receiver_works_as_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = section().split("**A receiver in Python**", 1)[1].split("```python", 1)[1]
    code = code.split("```", 1)[0]
    secret = new_secret()
    monkeypatch.setenv("AUTHGATE_WEBHOOK_SECRET", secret)
    namespace: dict[str, Any] = {"__name__": "receiver_example"}
    exec(compile(code, "docs/api.md", "exec"), namespace)  # noqa: S102 (our own documentation)

    from authgate.config import WebhookEndpointConfig

    endpoint = Endpoint.of(WebhookEndpointConfig(url="http://receiver.test/hooks", secret=secret))
    message_id = new_message_id()
    body = encode_body("user.created", datetime.now(UTC), user_data(uuid.uuid4(), "a@b.example"))
    headers = {
        "content-type": "application/json",
        **endpoint.headers(message_id, datetime.now(UTC), body),
    }

    transport = httpx.ASGITransport(app=namespace["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver.test") as http:
        first = await http.post("/hooks/authgate", content=body, headers=headers)
        repeat = await http.post("/hooks/authgate", content=body, headers=headers)
        forged = await http.post(
            "/hooks/authgate", content=body.replace(b"a@b.example", b"x@y.example"), headers=headers
        )
    assert (first.status_code, repeat.status_code, forged.status_code) == (204, 204, 400)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 and printed[0].startswith("user.created {")
    assert namespace["handled"] == {message_id}
