"""Delivery against a real receiver on loopback: retries with the same ``webhook-id``, order per
endpoint, a slow endpoint that only delays itself, several dispatchers, metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.core.db import make_engine, make_sessionmaker
from authgate.runtime import Runtime
from authgate.webhooks.dispatcher import WebhookDispatcher, retry_delay
from authgate.webhooks.repository import ClaimedEvent, WebhookRepository
from tests.support.db import authgate_logs
from tests.support.webhooks import (
    Receiver,
    emit_numbered,
    outbox_rows,
    wait_for_rows,
    webhook_overrides,
)


def numbers(receiver: Receiver) -> list[int]:
    return [int(event.data["n"]) for event in receiver.accepted()]


def metric(name: str, endpoint: str) -> float:
    return REGISTRY.get_sample_value(name, {"endpoint": endpoint}) or 0.0


@pytest.mark.parametrize("outage", ["refused", "500"])
async def test_an_endpoint_that_is_down_for_a_while_gets_every_event_once_in_order(
    outage: str, receiver: Receiver, runtime: Runtime
) -> None:
    if outage == "refused":
        receiver.stop()
    else:
        receiver.mode = "fail"
    await emit_numbered(runtime, 3)
    await emit_numbered(runtime, 3, start=3)
    # A few failed attempts of the first event, none of the others: one in flight, in order.
    rows = await wait_for_rows(runtime, lambda rows: rows[0].attempts >= 3)
    assert [row.attempts for row in rows[1:]] == [0] * 5
    first_id = rows[0].message_id

    if outage == "refused":
        receiver.start()
    else:
        assert {r.webhook_id for r in receiver.requests} == {first_id}
        assert len(receiver.requests) >= 3  # each retry: the same webhook-id ...
        assert all(r.valid for r in receiver.requests)  # ... signed again, validly
        receiver.mode = "up"

    await receiver.wait_for(6)
    assert numbers(receiver) == [0, 1, 2, 3, 4, 5]
    accepted_ids = [r.webhook_id for r in receiver.requests if r.accepted]
    assert len(accepted_ids) == len(set(accepted_ids)) == 6  # each accepted exactly once
    assert accepted_ids[0] == first_id
    rows = await wait_for_rows(runtime, lambda rows: all(r.status == "delivered" for r in rows))
    assert rows[0].attempts >= 4 and rows[0].last_error is None
    assert all(row.payload_ciphertext is None for row in rows)  # wiped once delivered


@pytest.fixture
def slow() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.mode = "slow"
    receiver.slow_seconds = 3.0  # the tests' attempt timeout is 1 s
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def settings_overrides(receiver: Receiver, request: pytest.FixtureRequest) -> dict[str, Any]:
    extra: list[Receiver] = (
        [request.getfixturevalue("slow")] if "slow" in request.fixturenames else []
    )
    return webhook_overrides(receiver, *extra)


async def test_a_slow_endpoint_fails_its_attempt_and_holds_up_no_other(
    receiver: Receiver, slow: Receiver, runtime: Runtime
) -> None:
    started = time.monotonic()
    await emit_numbered(runtime, 3)
    await receiver.wait_for(3, timeout=2.5)
    assert time.monotonic() - started < 2.5
    assert numbers(receiver) == [0, 1, 2]
    assert slow.accepted() == []

    slow_key = runtime.webhooks.endpoints[1].key
    rows = await wait_for_rows(
        runtime,
        lambda rows: any(r.endpoint_key == slow_key and r.attempts >= 1 for r in rows),
    )
    head = next(r for r in rows if r.endpoint_key == slow_key)
    assert head.last_error == "timeout" and head.status in ("pending", "sending")

    slow.mode = "up"
    await slow.wait_for(3)
    assert numbers(slow) == [0, 1, 2]


async def test_an_endpoint_that_says_gone_is_logged_and_retried(
    receiver: Receiver, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.mode = "gone"
    with authgate_logs(caplog) as records:
        await emit_numbered(runtime, 1)
        await receiver.wait_until(lambda r: len(r.requests) >= 2)
        assert {r.status for r in receiver.requests} == {410}
        assert len({r.webhook_id for r in receiver.requests}) == 1
        gone = [r for r in records if r.getMessage() == "webhook.gone"]
        assert gone and all(r.levelno == logging.WARNING for r in gone)
        assert getattr(gone[0], "http_status", None) == 410
        assert receiver.url not in str(gone[0].__dict__)  # the endpoint's name, not its URL
        receiver.mode = "up"
        await receiver.wait_for(1)


async def test_several_dispatchers_keep_one_event_in_flight_per_endpoint(
    receiver: Receiver, runtime: Runtime
) -> None:
    """The runtime's dispatcher and two more, each with its own engine (as other processes
    would be), drain 30 events: each delivered once, in order, never two at once."""
    receiver.mode = "slow"
    receiver.slow_seconds = 0.02
    await emit_numbered(runtime, 30)
    engines = [make_engine(runtime.settings) for _ in range(2)]
    others = [
        WebhookDispatcher(runtime.settings, make_sessionmaker(engine), runtime.webhooks)
        for engine in engines
    ]
    try:
        for dispatcher in others:
            await dispatcher.start()
        await receiver.wait_for(30, timeout=30)
    finally:
        for dispatcher in others:
            await dispatcher.stop()
        for engine in engines:
            await engine.dispose()
    assert numbers(receiver) == list(range(30))
    assert len(receiver.requests) == 30
    assert receiver.max_active == 1
    claimed_by = {r.claimed_by for r in await outbox_rows(runtime)}
    assert claimed_by == {None}


async def test_a_stop_during_a_claim_hands_the_claimed_events_back(
    receiver: Receiver, runtime: Runtime
) -> None:
    """Once ``stop()`` is called the loop starts nothing: an event it was claiming just then is
    released, not delivered (so no delivery outlives a bounded ``Runtime.close()``)."""
    assert runtime.webhook_dispatcher is not None
    await runtime.webhook_dispatcher.stop()  # only this test's dispatcher claims
    stops: list[asyncio.Task[None]] = []

    class StopDuringClaim(WebhookRepository):
        async def claim(self, db: AsyncSession, **kwargs: Any) -> list[ClaimedEvent]:
            rows = await super().claim(db, **kwargs)
            if rows and not stops:
                stops.append(asyncio.create_task(dispatcher.stop()))
                await asyncio.sleep(0)  # stop() has set its flag
            return rows

    dispatcher = WebhookDispatcher(
        runtime.settings, runtime.sessionmaker, runtime.webhooks, repository=StopDuringClaim()
    )
    await emit_numbered(runtime, 2)
    await dispatcher.start()
    deadline = time.monotonic() + 5
    while not stops and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert stops, "nothing was claimed"
    await asyncio.wait_for(stops[0], 5)
    rows = await outbox_rows(runtime)
    assert [(r.status, r.claimed_by, r.attempts) for r in rows] == [("pending", None, 0)] * 2
    assert receiver.requests == []


async def test_metrics_per_endpoint(receiver: Receiver, runtime: Runtime) -> None:
    endpoint = runtime.webhooks.endpoints[0]
    assert endpoint.name == f"127.0.0.1#{endpoint.key[:6]}"
    dispatcher = runtime.webhook_dispatcher
    assert dispatcher is not None
    delivered = metric("authgate_webhook_delivered_total", endpoint.name)
    failed = metric("authgate_webhook_failed_attempts_total", endpoint.name)

    receiver.mode = "fail"
    await emit_numbered(runtime, 2)
    await receiver.wait_until(lambda r: len(r.requests) >= 2)
    await asyncio.sleep(0.2)
    await dispatcher.refresh_gauge()
    assert metric("authgate_webhook_oldest_undelivered_age_seconds", endpoint.name) > 0
    receiver.mode = "up"
    await receiver.wait_for(2)
    await wait_for_rows(runtime, lambda rows: all(r.status == "delivered" for r in rows))
    await dispatcher.refresh_gauge()
    assert metric("authgate_webhook_oldest_undelivered_age_seconds", endpoint.name) == 0
    assert metric("authgate_webhook_delivered_total", endpoint.name) == delivered + 2
    assert metric("authgate_webhook_failed_attempts_total", endpoint.name) >= failed + 2
    assert receiver.secret.removeprefix("whsec_") not in endpoint.name


def test_the_back_off_doubles_from_the_base_to_five_minutes_with_jitter() -> None:
    for attempts, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (40, 300.0)]:
        delays = [retry_delay(attempts, 1.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempts, min(delays))
        assert max(delays) - min(delays) > 0  # jittered
