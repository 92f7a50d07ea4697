"""The ``authgate`` command, run as an operator would: a separate process, configured by the
environment only, against a fresh SQLite database and key directory."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from authgate.core.errors import InvalidAccessToken
from authgate.core.http import ClientInfo
from authgate.core.security.crypto import EncryptionService, new_key_spec, parse_key_ring
from authgate.core.time import shifted, utc_now
from authgate.mfa.factors import totp_associated_data
from authgate.models import (
    ActionKind,
    ActionToken,
    AuditEvent,
    AuthSession,
    EmailOutbox,
    OAuthState,
    RefreshToken,
    SignInPair,
    TotpSecret,
)
from authgate.runtime import Runtime
from authgate.sessions.repository import SessionRepository
from authgate.users.emails import email_key
from tests.support.factories import TEST_CLIENT, Factory
from tests.support.settings import make_settings

ADMIN_PASSWORD = "a long admin password 123"

STARTUP_KEYS = (
    "from authgate.config import Settings\n"
    "from authgate.core.security.keys import SigningKeyRing\n"
    "SigningKeyRing.from_settings(Settings())\n"
)


class Cli:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.db_path = workdir / "a.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
        env["AUTHGATE_DATABASE_URL"] = f"sqlite+aiosqlite:///{self.db_path}"
        env["AUTHGATE_KEYS_DIR"] = str(workdir / "keys")
        env["AUTHGATE_LOG_LEVEL"] = "WARNING"
        self.env = env

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.python("-m", "authgate", *args, stdin=stdin, check=check)

    def python(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # The working directory is the temporary one, so no `.env` of the checkout is read.
        result = subprocess.run(
            [sys.executable, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            timeout=120,
            check=False,
        )
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def keys(self) -> list[list[str]]:
        lines = self.run("keys", "list").stdout.splitlines()
        return [line.split("\t") for line in lines if line.strip()]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def _current(keys: list[list[str]]) -> list[str]:
    return [row[0] for row in keys if row[-1] == "current"]


def test_migrate_and_create_admin(cli: Cli) -> None:
    cli.run("migrate")
    assert cli.db_path.exists()
    created = cli.run(
        "create-admin", "Admin@Example.com", "--password-stdin", stdin=ADMIN_PASSWORD + "\n"
    )
    assert "Admin@Example.com" in created.stdout
    assert ADMIN_PASSWORD not in created.stdout + created.stderr

    with sqlite3.connect(cli.db_path) as db:
        rows = db.execute(
            "SELECT email, email_key, email_verified, is_active, is_superuser, password_hash"
            " FROM users"
        ).fetchall()
    assert len(rows) == 1
    email, key, verified, active, superuser, password_hash = rows[0]
    assert key == "admin@example.com"
    assert email_key(email) == key
    assert (verified, active, superuser) == (1, 1, 1)
    assert password_hash.startswith("$argon2id$")
    assert ADMIN_PASSWORD not in password_hash

    # Running it again for the same address promotes/updates rather than duplicating.
    cli.run("create-admin", "admin@example.com", "--password-stdin", stdin=ADMIN_PASSWORD + "!\n")
    with sqlite3.connect(cli.db_path) as db:
        again = db.execute("SELECT password_hash, is_superuser FROM users").fetchall()
    assert len(again) == 1
    assert again[0][0] != password_hash
    assert again[0][1] == 1


def test_create_admin_refuses_a_weak_password(cli: Cli) -> None:
    cli.run("migrate")
    result = subprocess.run(
        [sys.executable, "-m", "authgate", "create-admin", "a@example.com", "--password-stdin"],
        input="short\n",
        capture_output=True,
        text=True,
        env=cli.env,
        cwd=cli.workdir,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    # One line naming the reason, not a traceback.
    assert result.stderr.startswith("error: ")
    assert "15" in result.stderr
    assert "Traceback" not in result.stderr
    with sqlite3.connect(cli.db_path) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_create_admin_prints_the_strength_feedback(cli: Cli) -> None:
    cli.run("migrate")
    result = cli.run(
        "create-admin", "a@example.com", "--password-stdin", stdin="aaaaaaaaaaaaaaaa\n", check=False
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Repeats" in result.stderr  # zxcvbn's warning, as the API's detail says it
    assert "Traceback" not in result.stderr


def test_keys_list_and_rotate(cli: Cli) -> None:
    cli.run("migrate")
    assert cli.keys() == []  # nothing generated yet: development keys appear on first start
    # What `serve` does on start-up in development: load the ring, generating the first key.
    cli.python("-c", STARTUP_KEYS)
    before = cli.keys()
    assert len(before) == 1, before
    assert len(_current(before)) == 1
    (old,) = _current(before)

    rotated = cli.run("keys", "rotate")
    assert rotated.stdout.strip()
    after = cli.keys()
    assert len(after) == 2, after
    (new,) = _current(after)
    assert new != old
    assert {row[0] for row in after} == {old, new}
    # Metadata only: no key material is printed.
    listing = cli.run("keys", "list").stdout
    assert '"d"' not in listing
    assert "PRIVATE" not in listing


def test_openapi(cli: Cli) -> None:
    spec = json.loads(cli.run("openapi").stdout)
    assert "/api/v1/auth/login" in spec["paths"]
    assert "/api/v1/admin/users" in spec["paths"]
    assert spec["info"]["title"] == "authgate"


async def test_purge_expired_deletes_exactly_what_can_never_be_used_again(cli: Cli) -> None:
    """Expired and ended rows go, live ones stay: a session past its end or revoked (with its
    refresh tokens), a one-time token expired, superseded or spent, an expired OAuth state, an
    expired MFA challenge, a sign-in pair unseen for 90 days (the new-sign-in alert's memory
    outlives the sessions)."""
    await asyncio.to_thread(cli.run, "migrate")
    settings = make_settings(
        database_url=cli.env["AUTHGATE_DATABASE_URL"], keys_dir=cli.workdir / "keys"
    )
    runtime = Runtime.build(settings, with_dispatcher=False)
    try:
        factory = Factory(runtime)
        user = await factory.user()
        live = await factory.session(user)
        async with runtime.sessionmaker() as db, db.begin():  # a spent token of a live session
            rotated = await runtime.sessions.refresh(db, live.refresh_token, TEST_CLIENT)
        with shifted(-timedelta(seconds=settings.refresh_token_ttl, days=1)):
            expired = await factory.session(user)
        revoked = await factory.session(user)
        with shifted(-timedelta(days=91)):
            old_pair = await factory.session(
                user, client=ClientInfo(ip_address="198.51.100.9", user_agent="old-browser/1")
            )
        async with runtime.sessionmaker() as db, db.begin():
            assert await SessionRepository().revoke_session(
                db, revoked.session_id, utc_now(), "logout"
            )

        superseded = await factory.action_token(user, ActionKind.verify_email)
        live_token = await factory.action_token(user, ActionKind.verify_email)
        with shifted(-timedelta(hours=2)):
            expired_token = await factory.action_token(user, ActionKind.reset_password)
        spent = await factory.action_token(user, ActionKind.change_email)
        async with runtime.sessionmaker() as db, db.begin():
            await runtime.action_tokens.consume(db, ActionKind.change_email, spent)

        live_state = await factory.oauth_state(ttl_seconds=600)
        await factory.oauth_state(ttl_seconds=-60)

        async with runtime.sessionmaker() as db, db.begin():
            await runtime.mfa_challenges.challenge(db, user.id, "password", TEST_CLIENT)
        with shifted(-timedelta(seconds=settings.mfa_token_ttl + 60)):
            async with runtime.sessionmaker() as db, db.begin():
                await runtime.mfa_challenges.challenge(db, user.id, "password", TEST_CLIENT)

        async with runtime.sessionmaker() as db:
            before = set((await db.scalars(select(AuthSession.id))).all())
            pairs = len((await db.scalars(select(SignInPair.pair_hash))).all())
        assert before == {
            live.session_id,
            expired.session_id,
            revoked.session_id,
            old_pair.session_id,
        }
        assert pairs == 2  # the test client's, seen just now, and the one of 91 days ago

        counts = json.loads((await asyncio.to_thread(cli.run, "purge-expired")).stdout)
        assert counts == {
            "action_tokens": 3,
            "sessions": 3,
            "oauth_states": 1,
            "mfa_challenges": 1,
            "sign_in_pairs": 1,
            "webauthn_challenges": 0,
        }

        async with runtime.sessionmaker() as db:
            sessions = set((await db.scalars(select(AuthSession.id))).all())
            tokens = (await db.execute(select(RefreshToken.session_id, RefreshToken.used_at))).all()
            actions = set((await db.scalars(select(ActionToken.token_hash))).all())
            states = set((await db.scalars(select(OAuthState.id))).all())
            pairs = len((await db.scalars(select(SignInPair.pair_hash))).all())
        assert sessions == {live.session_id}
        assert pairs == 1
        assert rotated.session_id == live.session_id
        # The live session keeps its whole chain (the spent token proves reuse later).
        assert sorted(
            used is None for session_id, used in tokens if session_id == live.session_id
        ) == [False, True]
        assert len(tokens) == 2
        assert actions == {runtime.opaque.hash(live_token)}
        assert runtime.opaque.hash(superseded) not in actions
        assert runtime.opaque.hash(expired_token) not in actions
        assert states == {live_state.id}

        # A second run finds nothing more to delete.
        again = json.loads((await asyncio.to_thread(cli.run, "purge-expired")).stdout)
        assert again == {
            "action_tokens": 0,
            "sessions": 0,
            "oauth_states": 0,
            "mfa_challenges": 0,
            "sign_in_pairs": 0,
            "webauthn_challenges": 0,
        }
    finally:
        await runtime.close()


def test_keys_list_on_a_fresh_install_says_how_to_create_a_key(cli: Cli) -> None:
    listed = cli.run("keys", "list")
    assert listed.stdout == ""
    assert "authgate keys rotate" in listed.stderr
    cli.run("keys", "rotate")
    assert len(_current(cli.keys())) == 1
    assert cli.run("keys", "list").stderr == ""


def test_dead_email_is_listed_and_sent_again(cli: Cli) -> None:
    cli.run("migrate")
    retryable, wiped = uuid.uuid4(), uuid.uuid4()
    with sqlite3.connect(cli.db_path) as db:
        for outbox_id, payload, created in (
            (retryable, b"ciphertext", "2026-11-20 10:00:00.000000"),
            (wiped, None, "2026-11-21 10:00:00.000000"),
        ):
            db.execute(
                "INSERT INTO email_outbox (id, to_address, template, payload_ciphertext, status,"
                " attempts, next_attempt_at, last_error, created_at)"
                " VALUES (?, 'ada@example.com', 'verify_email', ?, 'dead', 8, ?, 'SES: throttled', ?)",
                (outbox_id.hex, payload, created, created),
            )
    rows = [json.loads(line) for line in cli.run("email", "dead").stdout.splitlines()]
    assert [(r["id"], r["retryable"]) for r in rows] == [
        (str(wiped), False),
        (str(retryable), True),
    ]
    assert rows[1]["last_error"] == "SES: throttled" and rows[1]["attempts"] == 8

    retried = [
        json.loads(line) for line in cli.run("email", "retry", str(retryable)).stdout.splitlines()
    ]
    assert retried == [{"id": str(retryable), "queued": True}, {"queued": 1, "failed": 0}]
    with sqlite3.connect(cli.db_path) as db:
        status, attempts = db.execute(
            "SELECT status, attempts FROM email_outbox WHERE id = ?", (retryable.hex,)
        ).fetchone()
    assert (status, attempts) == ("pending", 0)
    assert [json.loads(line)["id"] for line in cli.run("email", "dead").stdout.splitlines()] == [
        str(wiped)
    ]

    for bad in (str(retryable), str(wiped), "not-a-uuid"):
        refused = cli.run("email", "retry", bad, check=False)
        assert refused.returncode == 1, bad
        assert refused.stderr.startswith("error:") and "Traceback" not in refused.stderr


async def test_users_reset_mfa(cli: Cli) -> None:
    """``authgate users reset-mfa EMAIL``: TOTP and recovery codes go, audited, the owner mailed
    (through the outbox, which ``serve`` or ``worker`` delivers)."""
    await asyncio.to_thread(cli.run, "migrate")
    settings = make_settings(
        database_url=cli.env["AUTHGATE_DATABASE_URL"], keys_dir=cli.workdir / "keys"
    )
    runtime = Runtime.build(settings, with_dispatcher=False)
    try:
        factory = Factory(runtime)
        user = await factory.user()
        await factory.totp(user)
        done = await asyncio.to_thread(cli.run, "users", "reset-mfa", user.email.upper())
        assert "removed" in done.stdout
        async with runtime.sessionmaker() as db:
            mfa = await runtime.mfa.status(db, user)
            assert (mfa.totp, mfa.recovery_codes_left) == (False, 0)
            outbox = (await db.scalars(select(EmailOutbox.template))).all()
            audit = (
                await db.scalars(select(AuditEvent.detail).where(AuditEvent.type == "mfa_disabled"))
            ).all()
        assert outbox == ["mfa_disabled"]
        assert audit == [{"by": "cli", "was_on": True}]

        again = await asyncio.to_thread(cli.run, "users", "reset-mfa", user.email)
        assert "was not on" in again.stdout
        unknown = await asyncio.to_thread(
            cli.run, "users", "reset-mfa", "nobody@example.com", check=False
        )
        assert unknown.returncode == 1
        assert unknown.stderr.startswith("error:") and "Traceback" not in unknown.stderr
    finally:
        await runtime.close()


async def test_keys_reencrypt_moves_totp_secrets_to_the_new_key(cli: Cli) -> None:
    """Round trip: a secret made under the old key is rewritten under the new one by
    ``authgate keys reencrypt``, and a service holding only the new key reads it."""
    old, new = new_key_spec("old"), new_key_spec("new")
    await asyncio.to_thread(cli.run, "migrate")
    settings = make_settings(
        database_url=cli.env["AUTHGATE_DATABASE_URL"],
        keys_dir=cli.workdir / "keys",
        encryption_keys=old,
    )
    runtime = Runtime.build(settings, with_dispatcher=False)
    try:
        user = await Factory(runtime).user()
        enrolled = await Factory(runtime).totp(user)
        cli.env["AUTHGATE_ENCRYPTION_KEYS"] = f"{new},{old}"
        done = await asyncio.to_thread(cli.run, "keys", "reencrypt")
        assert json.loads(done.stdout) == {"reencrypted": 1, "key_id": "new"}
        async with runtime.sessionmaker() as db:
            row = (await db.scalars(select(TotpSecret))).one()
        assert row.key_id == "new"
        new_only = EncryptionService(parse_key_ring(new))
        assert new_only.key_id_of(row.secret_ct) == "new"
        secret = new_only.decrypt(row.secret_ct, totp_associated_data(user.id)).decode()
        assert secret == enrolled.secret
        again = await asyncio.to_thread(cli.run, "keys", "reencrypt")
        assert json.loads(again.stdout) == {"reencrypted": 0, "key_id": "new"}
    finally:
        await runtime.close()


async def test_sessions_revoke_all(cli: Cli) -> None:
    """``authgate sessions revoke-all``: every session ends, access tokens issued before are
    refused by a running process (which reads the instant from the database without Redis),
    audited; piped, one JSON line."""
    await asyncio.to_thread(cli.run, "migrate")
    settings = make_settings(
        database_url=cli.env["AUTHGATE_DATABASE_URL"], keys_dir=cli.workdir / "keys"
    )
    runtime = Runtime.build(settings, with_dispatcher=False)
    await runtime.start()
    try:
        factory = Factory(runtime)
        opened = [await factory.session(await factory.user()) for _ in range(2)]
        async with runtime.sessionmaker() as db:
            await runtime.sessions.check_access(db, opened[0].access_token)

        done = await asyncio.to_thread(cli.run, "sessions", "revoke-all")
        assert json.loads(done.stdout) == {"sessions_ended": 2}

        await runtime.not_before.refresh()
        async with runtime.sessionmaker() as db:
            for tokens in opened:
                with pytest.raises(InvalidAccessToken):
                    await runtime.sessions.check_access(db, tokens.access_token)
            live = (
                await db.scalars(select(AuthSession.id).where(AuthSession.revoked_at.is_(None)))
            ).all()
            audit = (
                await db.scalars(
                    select(AuditEvent.detail).where(AuditEvent.type == "sessions_revoked_all")
                )
            ).all()
        assert live == []
        assert audit == [{"by": "cli", "sessions_ended": 2}]
        help_text = (await asyncio.to_thread(cli.run, "sessions", "revoke-all", "--help")).stdout
        assert "authgate sessions revoke-all" in help_text
    finally:
        await runtime.close()
