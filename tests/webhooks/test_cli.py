"""``authgate webhooks dead|retry|test``, run as an operator would (a separate process configured
by the environment), against the test database, after 24 hours of failed attempts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from authgate.config import Settings
from authgate.core.time import shifted
from authgate.runtime import Runtime
from tests.support.webhooks import Receiver, emit_numbered, wait_for_rows


def authgate(
    settings: Settings, receiver: Receiver, cwd: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(
        {
            "AUTHGATE_ENV": "test",
            "AUTHGATE_LOG_LEVEL": "WARNING",
            "AUTHGATE_DATABASE_URL": settings.database_url,
            "AUTHGATE_KEYS_DIR": str(settings.keys_dir),
            "AUTHGATE_WEBHOOKS": json.dumps([receiver.config()]),
            "AUTHGATE_WEBHOOK_TIMEOUT": "2",
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "authgate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,  # no .env of the checkout
        timeout=120,
        check=False,
    )


def lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


async def test_dead_after_24_hours_listed_and_sent_again(
    receiver: Receiver, runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    receiver.stop()
    await emit_numbered(runtime, 2)
    await wait_for_rows(runtime, lambda rows: rows[0].attempts >= 2)
    with shifted(timedelta(hours=24, minutes=1)):
        # The first dies at its next attempt, then the second (also past its 24 hours).
        rows = await wait_for_rows(runtime, lambda rows: all(r.status == "dead" for r in rows))
    assert all(r.last_error == "ConnectError" for r in rows)
    first, second = rows

    dead = lines(authgate(settings, receiver, tmp_path, "webhooks", "dead"))
    assert [d["id"] for d in dead] == [second.message_id, first.message_id]  # newest first
    assert dead[1]["type"] == "user.updated"
    assert dead[1]["endpoint"] == runtime.webhooks.endpoints[0].name
    assert dead[1]["retryable"] is True and dead[1]["last_error"] == "ConnectError"
    assert dead[1]["attempts"] >= 3
    assert receiver.secret not in json.dumps(dead)

    receiver.start()
    retried = authgate(settings, receiver, tmp_path, "webhooks", "retry", first.message_id)
    assert retried.returncode == 0, retried.stderr
    assert f"{first.message_id} queued again" in retried.stdout
    (event,) = await receiver.wait_for(1)
    assert event.webhook_id == first.message_id and event.valid
    assert event.data["n"] == 0
    rows = await wait_for_rows(runtime, lambda rows: rows[0].status == "delivered")
    assert rows[1].status == "dead"  # a retry sends that event only
    assert lines(authgate(settings, receiver, tmp_path, "webhooks", "dead")) == [dead[0]]

    again = authgate(settings, receiver, tmp_path, "webhooks", "retry", first.message_id)
    assert again.returncode == 1 and "not a dead event" in again.stderr
    unknown = authgate(settings, receiver, tmp_path, "webhooks", "retry", "msg_unknown")
    assert unknown.returncode == 1


async def test_test_sends_a_signed_event_to_a_configured_endpoint(
    receiver: Receiver, settings: Settings, tmp_path: Path
) -> None:
    (outcome,) = lines(authgate(settings, receiver, tmp_path, "webhooks", "test", receiver.url))
    assert outcome["ok"] is True and outcome["status"] == 204
    (event,) = receiver.accepted()
    assert event.valid and event.type == "webhook.test"
    assert event.webhook_id == outcome["id"]
    assert receiver.secret not in json.dumps(outcome)

    receiver.mode = "fail"
    failed = authgate(settings, receiver, tmp_path, "webhooks", "test", receiver.url)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["error"] == "http 500"

    elsewhere = authgate(
        settings, receiver, tmp_path, "webhooks", "test", "https://elsewhere.example/hooks"
    )
    assert elsewhere.returncode == 1 and "not an endpoint" in elsewhere.stderr


async def test_create_admin_sends_user_created(
    receiver: Receiver, runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    made = authgate(
        settings,
        receiver,
        tmp_path,
        "create-admin",
        "root@example.com",
        "--password-stdin",
        stdin="a long admin password 123\n",
    )
    assert made.returncode == 0, made.stderr
    (event,) = await receiver.wait_for(1)
    assert event.type == "user.created" and event.valid
    assert event.data["email"] == "root@example.com"
    assert event.data["method"] == "create-admin"


async def test_the_worker_delivers_webhooks(
    receiver: Receiver, runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    """``authgate worker`` (another process) delivers what this one writes."""
    assert runtime.webhook_dispatcher is not None
    await runtime.webhook_dispatcher.stop()  # only the worker delivers
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(
        {
            "AUTHGATE_ENV": "test",
            "AUTHGATE_LOG_LEVEL": "WARNING",
            "AUTHGATE_DATABASE_URL": settings.database_url,
            "AUTHGATE_KEYS_DIR": str(settings.keys_dir),
            "AUTHGATE_WEBHOOKS": json.dumps([receiver.config()]),
        }
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "authgate", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await emit_numbered(runtime, 2)
        await receiver.wait_for(2, timeout=60)
        assert [e.data["n"] for e in receiver.accepted()] == [0, 1]
        assert all(r.valid for r in receiver.requests)
    finally:
        worker.terminate()
        _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
