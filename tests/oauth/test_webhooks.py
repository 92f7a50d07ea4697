"""Provider sign-ins and webhooks: an account made by a provider sign-in is ``user.created``, an
unverified account it replaces is ``user.deleted``, and its session is ``session.created``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.flows import Flows
from tests.support.oauth import Browser, OidcServer, base_overrides, new_sub
from tests.support.webhooks import Receiver, webhook_overrides


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def settings_overrides(oidc_server: OidcServer, receiver: Receiver) -> dict[str, Any]:
    return {**base_overrides(oidc_server.url), **webhook_overrides(receiver)}


async def test_a_provider_sign_in_that_creates_the_account(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, receiver: Receiver
) -> None:
    idp.next_user(new_sub(), "grace@example.com", email_verified=True)
    pair = await browser.tokens()
    me = (
        await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        )
    ).json()
    events = await receiver.wait_for(2)
    assert [(e.type, e.data) for e in events] == [
        (
            "user.created",
            {
                "user_id": me["id"],
                "email": "grace@example.com",
                "email_verified": True,
                "method": "oauth:test",
            },
        ),
        (
            "session.created",
            {
                "user_id": me["id"],
                "session_id": events[1].data["session_id"],
                "method": "oauth:test",
            },
        ),
    ]
    assert all(r.valid for r in receiver.requests)


async def test_an_unverified_account_replaced_by_a_provider_sign_in_is_deleted(
    browser: Browser, flows: Flows, idp: OidcServer, receiver: Receiver
) -> None:
    victim = "victim@example.com"
    assert (await flows.register(victim)).status_code == 202
    idp.next_user(new_sub(), victim, email_verified=True)
    await browser.tokens()
    events = await receiver.wait_for(4)
    assert [(e.type, e.data.get("reason"), e.data.get("email")) for e in events] == [
        ("user.created", None, victim),  # the squatter's registration
        ("user.deleted", "unverified_account_replaced_by_oauth", victim),
        ("user.created", None, victim),  # the provider's account
        ("session.created", None, None),
    ]
    assert events[0].data["user_id"] == events[1].data["user_id"] != events[2].data["user_id"]
