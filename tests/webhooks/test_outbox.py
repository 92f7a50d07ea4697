"""The webhook outbox: written in the caller's transaction, one INSERT, encrypted at rest."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from authgate.app import create_app
from authgate.config import Settings
from authgate.core.store import StoreUnavailable
from authgate.runtime import Runtime
from authgate.webhooks import WebhookEvent, user_data
from authgate.webhooks.events import check_data
from tests.support.db import row_count, scan_columns
from tests.support.factories import Factory
from tests.support.flows import TEST_PASSWORD
from tests.support.settings import make_settings
from tests.support.webhooks import Receiver, outbox_rows, wait_for_rows, webhook_overrides


async def _emit_then_fail(runtime: Runtime) -> None:
    async with runtime.sessionmaker() as db, db.begin():
        await runtime.webhooks.emit(
            db, WebhookEvent.user_created, user_data(uuid.uuid4(), "a@example.com")
        )
        raise RuntimeError("something fails after the emit")


async def test_a_rolled_back_change_writes_no_event(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError, match="after the emit"):
        await _emit_then_fail(runtime)
    assert await row_count(runtime, "webhook_outbox") == 0


async def test_a_request_failing_after_its_emit_writes_no_event(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin deactivation emits user.updated, then the shared store (publishing the ended
    sessions) is down: 503, and neither the change nor its events remain."""
    admin = await factory.account(is_superuser=True)
    member = await factory.user()
    await factory.session(member)  # an open session to end (and to publish the end of)
    await wait_for_rows(runtime, lambda rows: all(r.status == "delivered" for r in rows))
    before = len(await outbox_rows(runtime))

    async def store_down(*_args: Any, **_kwargs: Any) -> None:
        raise StoreUnavailable

    monkeypatch.setattr(runtime.store, "set_flag", store_down)
    response = await client.patch(
        f"/api/v1/admin/users/{member.id}", json={"is_active": False}, headers=admin.auth
    )
    assert response.status_code == 503
    assert len(await outbox_rows(runtime)) == before

    monkeypatch.undo()  # the store is back: the same request writes its two events
    response = await client.patch(
        f"/api/v1/admin/users/{member.id}", json={"is_active": False}, headers=admin.auth
    )
    assert response.status_code == 200
    rows = await outbox_rows(runtime)
    assert [r.event_type for r in rows[before:]] == ["user.updated", "session.revoked"]


async def test_a_registration_refused_by_the_password_policy_writes_no_event(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": "weak@example.com", "password": "password"}
    )
    assert response.status_code == 422
    assert await row_count(runtime, "webhook_outbox") == 0


async def test_the_body_is_encrypted_at_rest_and_wiped_once_delivered(
    receiver: Receiver, runtime: Runtime
) -> None:
    receiver.stop()  # nothing is delivered meanwhile
    email = f"secret-{uuid.uuid4().hex[:8]}@example.com"
    async with runtime.sessionmaker() as db, db.begin():
        await runtime.webhooks.emit(db, WebhookEvent.user_created, user_data(uuid.uuid4(), email))
    assert [str(leak) for leak in await scan_columns(runtime, [email])] == []
    (row,) = await outbox_rows(runtime)
    assert row.payload_ciphertext is not None and row.payload_key_id == "dev1"
    assert row.endpoint_key == runtime.webhooks.endpoints[0].key
    assert receiver.secret not in str(row.__dict__)
    receiver.start()
    await receiver.wait_for(1)
    (row,) = await wait_for_rows(runtime, lambda rows: rows[0].status == "delivered")
    assert row.payload_ciphertext is None and row.delivered_at is not None


def test_data_naming_a_secret_is_refused() -> None:
    for key in ("password", "new_password", "refresh_token", "client_secret", "code", "otp_hash"):
        with pytest.raises(ValueError, match="may not carry"):
            check_data({"user_id": "x", key: "…"})
    with pytest.raises(ValueError, match="may not carry"):
        check_data({"user_id": "x", "nested": {"token": "…"}})
    assert check_data({"user_id": "x", "session_id": "y", "email": "a@b.c"})


# -- several endpoints, and none -----------------------------------------------------------


@pytest.fixture
def second() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


def _statements(runtime: Runtime) -> tuple[list[str], Any]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    return seen, record


async def _register_statements(settings: Settings, email: str) -> list[str]:
    """The SQL a registration runs, through the app of a runtime built from ``settings``."""
    runtime = Runtime.build(settings, with_dispatcher=False)
    app = create_app(settings, runtime=runtime)
    app.state.runtime = runtime
    seen, listener = _statements(runtime)
    try:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 51234))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            response = await http.post(
                "/api/v1/auth/register", json={"email": email, "password": TEST_PASSWORD}
            )
        assert response.status_code == 202
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", listener)
        await runtime.close()
    return seen


@pytest.fixture
def base_settings(settings: Settings) -> dict[str, Any]:
    """What a second runtime on the same database and keys needs."""
    return {
        "database_url": settings.database_url,
        "keys_dir": settings.keys_dir,
        "smtp_host": settings.smtp_host,
        "smtp_port": settings.smtp_port,
    }


async def test_emission_costs_nothing_without_endpoints_and_one_insert_with_them(
    base_settings: dict[str, Any], receiver: Receiver, second: Receiver, runtime: Runtime
) -> None:
    none = await _register_statements(make_settings(**base_settings), "none@example.com")
    assert not [s for s in none if "webhook_outbox" in s]
    assert await row_count(runtime, "webhook_outbox") == 0

    both = make_settings(**base_settings, **webhook_overrides(receiver, second))
    two = await _register_statements(both, "two@example.com")
    inserts = [s for s in two if "webhook_outbox" in s]
    assert len(inserts) == 1 and inserts[0].lstrip().upper().startswith("INSERT")
    # The same statements otherwise: the emit is the only difference.
    assert [s for s in two if "webhook_outbox" not in s] == none
    rows = await outbox_rows(runtime)
    assert [r.event_type for r in rows] == ["user.created", "user.created"]
    assert len({r.endpoint_key for r in rows}) == 2
    assert len({r.message_id for r in rows}) == 2


async def test_an_endpoint_gets_only_the_events_it_subscribed_to(
    base_settings: dict[str, Any], receiver: Receiver, second: Receiver, factory: Factory
) -> None:
    overrides = webhook_overrides(receiver, second)
    overrides["webhooks"][1]["events"] = ["user.created"]
    settings = make_settings(**base_settings, **overrides)
    runtime = Runtime.build(settings)
    await runtime.start()
    try:
        async with runtime.sessionmaker() as db, db.begin():
            user_id = uuid.uuid4()
            await runtime.webhooks.emit(db, WebhookEvent.session_created, {"user_id": str(user_id)})
            await runtime.webhooks.emit(db, WebhookEvent.user_created, user_data(user_id, "x@y.z"))
        await receiver.wait_for(2)
        await second.wait_for(1)
    finally:
        await runtime.close()
    assert receiver.types() == ["session.created", "user.created"]
    assert second.types() == ["user.created"]
