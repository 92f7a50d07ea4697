"""The outbox end to end: enqueue in a transaction, dispatch, deliver exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authgate.config import Settings
from authgate.core.db import make_engine, make_sessionmaker
from authgate.core.email import (
    EmailDispatcher,
    EmailService,
    EmailTemplate,
    OutgoingEmail,
    PermanentEmailError,
    SesBackend,
    SmtpBackend,
    TransientEmailError,
    dead_letters,
    requeue_dead,
    run_worker,
)
from authgate.core.email import dispatcher as dispatcher_module
from authgate.core.time import shifted, utc_now
from authgate.models.email_outbox import EmailOutbox, OutboxStatus
from tests.support.emails import (
    RecordingBackend,
    make_service,
    moto_messages,
    unique_address,
    verify_sender,
)
from tests.support.mail import SmtpSink
from tests.support.servers import MotoServer, moto_server

TOKEN = "agv_" + "Zx9" * 15


def _link(token: str = TOKEN) -> str:
    return f"https://app.authgate.test/verify-email?token={token}"


async def _enqueue(
    maker: async_sessionmaker[AsyncSession],
    service: EmailService,
    to: str,
    *,
    token: str = TOKEN,
    count: int = 1,
) -> None:
    async with maker() as db:
        for _ in range(count):
            await service.enqueue(
                db,
                to=to,
                template=EmailTemplate.verify_email,
                context={"name": "Ada", "link": _link(token), "expires_hours": 24},
                user_id=uuid.uuid4(),
            )
        assert db.info["outbox_dirty"] is True
        await db.commit()


async def _rows(maker: async_sessionmaker[AsyncSession]) -> Sequence[EmailOutbox]:
    async with maker() as db:
        return (await db.scalars(select(EmailOutbox).order_by(EmailOutbox.created_at))).all()


async def _drain(dispatcher: EmailDispatcher) -> int:
    total = 0
    while processed := await dispatcher.run_once():
        total += processed
    return total


class ScriptedBackend:
    """Fails the way it is told to (the real providers are covered by the e2e tests)."""

    name = "scripted"

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.in_flight = 0

    async def send(self, message: OutgoingEmail) -> str | None:
        self.calls += 1
        self.in_flight += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.error is not None:
                raise self.error
            return "ok"
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        return None


# -- end to end through the real providers ------------------------------------------------


async def test_ses_end_to_end(
    email_db: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    service: EmailService,
    moto: MotoServer,
) -> None:
    settings = email_db.model_copy(update={"email_backend": "ses", "ses_endpoint_url": moto.url})
    backend = SesBackend(settings)
    dispatcher = EmailDispatcher(settings, sessionmaker, service, backend)
    to = unique_address()
    try:
        await _enqueue(sessionmaker, service, to)
        assert await _drain(dispatcher) == 1
    finally:
        await backend.close()

    [stored] = [m for m in await moto_messages(moto.url) if to in m["destinations"]["ToAddresses"]]
    assert stored["subject"] == "Confirm your email address for authgate"
    assert f'href="{_link()}"' in stored["body"]
    [row] = await _rows(sessionmaker)
    assert row.status == OutboxStatus.sent
    assert row.provider_message_id == stored["id"]
    assert row.payload_ciphertext is None
    assert row.sent_at is not None
    assert row.attempts == 1


async def test_smtp_end_to_end(
    email_db: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    service: EmailService,
    smtp_sink: SmtpSink,
) -> None:
    settings = email_db.model_copy(
        update={"email_backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": smtp_sink.port}
    )
    dispatcher = EmailDispatcher(settings, sessionmaker, service, SmtpBackend(settings))
    to = unique_address()
    await _enqueue(sessionmaker, service, to)
    assert await _drain(dispatcher) == 1
    mail = await smtp_sink.latest(to)
    assert mail.subject == "Confirm your email address for authgate"
    assert mail.link("/verify-email") == _link()
    assert f'href="{_link()}"' in mail.html
    [row] = await _rows(sessionmaker)
    assert row.status == OutboxStatus.sent
    assert mail.message["Message-ID"] == row.provider_message_id


async def test_started_dispatcher_delivers_on_notify(
    email_db: Settings, sessionmaker: async_sessionmaker[AsyncSession], service: EmailService
) -> None:
    settings = email_db.model_copy(update={"email_poll_interval": 30.0})
    backend = RecordingBackend()
    dispatcher = EmailDispatcher(settings, sessionmaker, service, backend)
    await dispatcher.start()
    try:
        await asyncio.sleep(0.1)
        await _enqueue(sessionmaker, service, unique_address(), count=3)
        dispatcher.notify()
        for _ in range(200):
            if len(backend.sent) == 3:
                break
            await asyncio.sleep(0.02)
    finally:
        await dispatcher.stop()
    assert len(backend.sent) == 3


@pytest.mark.slow
async def test_ses_outage_loses_nothing_and_sends_each_once(
    email_db: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    service: EmailService,
    aws_env: None,
) -> None:
    """The SES stand-in is down while 20 messages are queued; after it recovers, exactly 20
    arrive, none twice."""
    with moto_server() as ses:
        verify_sender(ses.url)
        settings = email_db.model_copy(
            update={"email_backend": "ses", "ses_endpoint_url": ses.url, "email_max_attempts": 10}
        )
        backend = SesBackend(settings)
        dispatcher = EmailDispatcher(settings, sessionmaker, service, backend)
        try:
            ses.stop()
            addresses = [unique_address() for _ in range(20)]
            for to in addresses:  # each commit succeeds while the provider is down
                await _enqueue(sessionmaker, service, to)
            assert await dispatcher.run_once() == 20
            rows = await _rows(sessionmaker)
            assert {r.status for r in rows} == {OutboxStatus.pending}
            assert all(r.attempts == 1 and r.last_error for r in rows)
            assert all(TOKEN not in (r.last_error or "") for r in rows)

            ses.start()  # same port, fresh state
            verify_sender(ses.url)
            with shifted(timedelta(minutes=5)):
                await _drain(dispatcher)
        finally:
            await backend.close()
        stored = await moto_messages(ses.url)

    delivered = [m["destinations"]["ToAddresses"][0] for m in stored]
    assert sorted(delivered) == sorted(addresses)
    rows = await _rows(sessionmaker)
    assert {r.status for r in rows} == {OutboxStatus.sent}
    assert all(r.attempts == 2 for r in rows)


@pytest.mark.postgres_only
@pytest.mark.slow
async def test_two_dispatchers_deliver_each_message_once(
    email_db: Settings, sessionmaker: async_sessionmaker[AsyncSession], service: EmailService
) -> None:
    await _enqueue(sessionmaker, service, unique_address(), count=200)

    class SlowRecording(RecordingBackend):
        async def send(self, message: OutgoingEmail) -> str | None:
            await asyncio.sleep(0.001)
            return await super().send(message)

    backends = [SlowRecording(), SlowRecording()]
    engines = [make_engine(email_db), make_engine(email_db)]
    try:
        dispatchers = [
            EmailDispatcher(
                email_db, make_sessionmaker(engine), service, backend, worker_id=f"w{i}"
            )
            for i, (engine, backend) in enumerate(zip(engines, backends, strict=True))
        ]

        async def drain(d: EmailDispatcher) -> int:
            total = 0
            while n := await d.run_once(limit=10):
                total += n
            return total

        counts = await asyncio.gather(*(drain(d) for d in dispatchers))
    finally:
        for engine in engines:
            await engine.dispose()

    assert sum(counts) == 200
    assert all(c > 0 for c in counts), counts  # both really took part
    merged = backends[0].counts + backends[1].counts
    assert len(merged) == 200
    assert set(merged.values()) == {1}
    rows = await _rows(sessionmaker)
    assert {r.status for r in rows} == {OutboxStatus.sent}


# -- failures, retries, leases ---------------------------------------------------------------


async def test_permanent_failure_is_dead_after_one_attempt(
    email_db: Settings, sessionmaker: async_sessionmaker[AsyncSession], service: EmailService
) -> None:
    backend = ScriptedBackend(PermanentEmailError("ses MessageRejected"))
    dispatcher = EmailDispatcher(email_db, sessionmaker, service, backend)
    await _enqueue(sessionmaker, service, unique_address())
    assert await dispatcher.run_once() == 1
    with shifted(timedelta(days=1)):
        assert await dispatcher.run_once() == 0
    assert backend.calls == 1
    async with sessionmaker() as db:
        [dead] = await dead_letters(db)
    assert dead.status == OutboxStatus.dead
    assert dead.attempts == 1
    assert dead.last_error == "ses MessageRejected"

    # An operator fixes the cause and requeues it.
    backend.error = None
    async with sessionmaker() as db:
        assert await requeue_dead(db, dead.id)
        await db.commit()
    assert await dispatcher.run_once() == 1
    [row] = await _rows(sessionmaker)
    assert row.status == OutboxStatus.sent


async def test_transient_failure_backs_off_then_dies(
    email_db: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    service: EmailService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Ceiling:
        @staticmethod
        def uniform(low: float, high: float) -> float:
            return high  # take the top of the jitter range so the growth is visible

    monkeypatch.setattr(dispatcher_module, "_random", Ceiling())
    settings = email_db.model_copy(
        update={"email_retry_base_seconds": 10.0, "email_max_attempts": 4}
    )
    backend = ScriptedBackend(TransientEmailError("ses TooManyRequestsException"))
    dispatcher = EmailDispatcher(settings, sessionmaker, service, backend)
    await _enqueue(sessionmaker, service, unique_address())

    delays: list[float] = []
    offset = timedelta(0)
    for attempt in range(1, 4):
        with shifted(offset):
            before = utc_now()
            assert await dispatcher.run_once() == 1
            assert await dispatcher.run_once() == 0  # not due yet
        [row] = await _rows(sessionmaker)
        assert row.status == OutboxStatus.pending
        assert row.attempts == attempt
        assert row.last_error == "ses TooManyRequestsException"
        assert row.claimed_by is None
        delays.append((row.next_attempt_at - before).total_seconds())
        offset = row.next_attempt_at - utc_now() + timedelta(seconds=1)

    assert delays[0] == pytest.approx(10, abs=1)
    assert delays[1] == pytest.approx(20, abs=1)
    assert delays[2] == pytest.approx(40, abs=1)
    with shifted(offset):
        assert await dispatcher.run_once() == 1
    [row] = await _rows(sessionmaker)
    assert row.status == OutboxStatus.dead
    assert row.attempts == 4
    assert backend.calls == 4


def test_retry_delay_is_full_jitter_and_capped() -> None:
    for attempts in range(1, 30):
        ceiling = min(3600.0, 2.0 * 2 ** (attempts - 1))
        for _ in range(20):
            assert 0 <= dispatcher_module.retry_delay(attempts, 2.0) <= ceiling


async def test_abandoned_claim_is_reclaimed(
    email_db: Settings, sessionmaker: async_sessionmaker[AsyncSession], service: EmailService
) -> None:
    await _enqueue(sessionmaker, service, unique_address(), count=2)
    async with sessionmaker() as db:
        ids = [row.id for row in (await db.scalars(select(EmailOutbox))).all()]
        # one claim has run out (the worker died), the other is still held
        await db.execute(
            update(EmailOutbox)
            .where(EmailOutbox.id == ids[0])
            .values(status="sending", claimed_by="dead", claimed_until=utc_now() - timedelta(1))
        )
        await db.execute(
            update(EmailOutbox)
            .where(EmailOutbox.id == ids[1])
            .values(status="sending", claimed_by="alive", claimed_until=utc_now() + timedelta(1))
        )
        await db.commit()

    backend = RecordingBackend()
    dispatcher = EmailDispatcher(email_db, sessionmaker, service, backend, worker_id="new")
    assert await dispatcher.run_once() == 1
    assert list(backend.counts) == [ids[0]]
    rows = {row.id: row for row in await _rows(sessionmaker)}
    assert rows[ids[0]].status == OutboxStatus.sent
    assert rows[ids[0]].attempts == 2  # the abandoned try counts
    assert rows[ids[1]].status == OutboxStatus.sending
    assert rows[ids[1]].claimed_by == "alive"


async def test_graceful_stop_finishes_in_flight_and_releases_the_rest(
    email_db: Settings, sessionmaker: async_sessionmaker[AsyncSession], service: EmailService
) -> None:
    backend = ScriptedBackend()
    backend.gate = asyncio.Event()
    dispatcher = EmailDispatcher(email_db, sessionmaker, service, backend, worker_id="w")
    await _enqueue(sessionmaker, service, unique_address(), count=6)
    await dispatcher.start()
    for _ in range(250):
        if backend.in_flight == dispatcher_module.SEND_CONCURRENCY:
            break
        await asyncio.sleep(0.02)
    assert backend.in_flight == dispatcher_module.SEND_CONCURRENCY

    stopping = asyncio.create_task(dispatcher.stop())
    await asyncio.sleep(0.05)
    backend.gate.set()
    await stopping

    rows = await _rows(sessionmaker)
    statuses = sorted(r.status for r in rows)
    assert statuses == ["pending"] * 2 + ["sent"] * 4
    for row in rows:
        assert row.claimed_by is None
        assert row.claimed_until is None
    assert backend.calls == 4
    assert await dispatcher.run_once() == 0  # a stopped dispatcher claims nothing


async def test_stop_timeout_cancels_sends_and_releases_claims(
    email_db: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    service: EmailService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatcher_module, "STOP_TIMEOUT", 0.2)
    backend = ScriptedBackend()
    backend.gate = asyncio.Event()  # never opens: a provider that hangs
    dispatcher = EmailDispatcher(email_db, sessionmaker, service, backend)
    await _enqueue(sessionmaker, service, unique_address(), count=3)
    await dispatcher.start()
    for _ in range(250):
        if backend.in_flight == 3:
            break
        await asyncio.sleep(0.02)
    await dispatcher.stop()
    rows = await _rows(sessionmaker)
    assert {r.status for r in rows} == {OutboxStatus.pending}
    assert all(r.claimed_until is None and r.attempts == 0 for r in rows)

    restarted = EmailDispatcher(email_db, sessionmaker, service, RecordingBackend())
    assert await _drain(restarted) == 3


async def test_a_stop_its_caller_gives_up_on_cancels_the_loop_and_releases_claims(
    email_db: Settings, sessionmaker: async_sessionmaker[AsyncSession], service: EmailService
) -> None:
    """A bounded ``Runtime.close()`` that stops waiting for the graceful stop must not leave the
    loop running (it would go on claiming rows another dispatcher expects)."""
    backend = ScriptedBackend()
    backend.gate = asyncio.Event()  # never opens: a provider that hangs
    dispatcher = EmailDispatcher(email_db, sessionmaker, service, backend)
    await _enqueue(sessionmaker, service, unique_address(), count=3)
    await dispatcher.start()
    loop = dispatcher._task
    assert loop is not None
    try:
        for _ in range(250):
            if backend.in_flight == 3:
                break
            await asyncio.sleep(0.02)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await dispatcher.stop()  # would wait STOP_TIMEOUT for the sends
        done, _ = await asyncio.wait({loop}, timeout=2)
        assert done
        rows = await _rows(sessionmaker)
        assert {r.status for r in rows} == {OutboxStatus.pending}
        assert all(r.claimed_until is None and r.attempts == 0 for r in rows)
    finally:
        backend.gate.set()
        await asyncio.wait({loop}, timeout=5)


async def test_prune_deletes_old_sent_rows_only(
    email_db: Settings, sessionmaker: async_sessionmaker[AsyncSession], service: EmailService
) -> None:
    dispatcher = EmailDispatcher(email_db, sessionmaker, service, RecordingBackend())
    await _enqueue(sessionmaker, service, unique_address(), count=2)
    await _drain(dispatcher)
    await _enqueue(sessionmaker, service, unique_address())
    assert await dispatcher.prune() == 0
    with shifted(timedelta(days=email_db.email_sent_retention_days, hours=1)):
        assert await dispatcher.prune() == 2
    [row] = await _rows(sessionmaker)
    assert row.status == OutboxStatus.pending


async def test_undecryptable_payload_is_dead_not_retried(
    email_db: Settings, sessionmaker: async_sessionmaker[AsyncSession], service: EmailService
) -> None:
    await _enqueue(sessionmaker, service, unique_address(), count=2)
    async with sessionmaker() as db:
        first, second = (await db.scalars(select(EmailOutbox))).all()
        # a ciphertext moved to another row must not decrypt there (bound to the row id)
        await db.execute(
            update(EmailOutbox)
            .where(EmailOutbox.id == second.id)
            .values(payload_ciphertext=first.payload_ciphertext)
        )
        await db.commit()
    backend = RecordingBackend()
    dispatcher = EmailDispatcher(email_db, sessionmaker, service, backend)
    assert await dispatcher.run_once() == 2
    rows = {row.id: row for row in await _rows(sessionmaker)}
    assert rows[first.id].status == OutboxStatus.sent
    assert rows[second.id].status == OutboxStatus.dead
    assert list(backend.counts) == [first.id]


# -- nothing secret at rest -------------------------------------------------------------------


async def _raw_columns(maker: async_sessionmaker[AsyncSession]) -> list[Any]:
    async with maker() as db:
        result = await db.execute(text("SELECT * FROM email_outbox"))
        return [value for row in result.all() for value in row]


async def test_no_raw_link_or_token_in_any_column(
    email_db: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    service = make_service(email_db)
    await _enqueue(sessionmaker, service, unique_address())
    for value in await _raw_columns(sessionmaker):
        if isinstance(value, bytes | memoryview):
            assert TOKEN.encode() not in bytes(value)
            assert b"verify-email" not in bytes(value)
        else:
            assert TOKEN not in str(value)

    dispatcher = EmailDispatcher(email_db, sessionmaker, service, RecordingBackend())
    assert await _drain(dispatcher) == 1
    [row] = await _rows(sessionmaker)
    assert row.payload_ciphertext is None
    for value in await _raw_columns(sessionmaker):
        assert TOKEN not in str(value)


async def test_unclassified_backend_error_costs_one_attempt(
    email_db: Settings, sessionmaker: async_sessionmaker[AsyncSession], service: EmailService
) -> None:
    backend = ScriptedBackend(RuntimeError(f"boom {TOKEN}"))
    dispatcher = EmailDispatcher(email_db, sessionmaker, service, backend)
    await _enqueue(sessionmaker, service, unique_address())
    assert await dispatcher.run_once() == 1
    [row] = await _rows(sessionmaker)
    assert row.status == OutboxStatus.pending
    assert row.attempts == 1
    assert row.last_error == "unexpected RuntimeError"


async def test_run_worker_delivers_until_stopped(
    email_db: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    service: EmailService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _enqueue(sessionmaker, service, "ada@example.com")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(email_db, stop=stop))
    try:
        for _ in range(250):
            rows = await _rows(sessionmaker)
            if rows[0].status == OutboxStatus.sent:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
    assert rows[0].status == OutboxStatus.sent
    assert _link() in capsys.readouterr().err  # console backend: the one place a link shows


async def test_abandoned_claim_on_last_attempt_is_dead(
    email_db: Settings, sessionmaker: async_sessionmaker[AsyncSession], service: EmailService
) -> None:
    await _enqueue(sessionmaker, service, unique_address())
    async with sessionmaker() as db:
        await db.execute(
            update(EmailOutbox).values(
                status="sending",
                claimed_by="dead",
                claimed_until=utc_now() - timedelta(seconds=1),
                attempts=email_db.email_max_attempts - 1,
            )
        )
        await db.commit()
    backend = RecordingBackend()
    dispatcher = EmailDispatcher(email_db, sessionmaker, service, backend)
    assert await dispatcher.run_once() == 0
    assert not backend.sent
    async with sessionmaker() as db:
        [dead] = await dead_letters(db)
    assert dead.last_error == "abandoned by its worker"
    assert dead.attempts == email_db.email_max_attempts
