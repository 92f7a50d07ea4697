"""The ``authgate`` command as operators expect it: long operations print JSON lines when
piped and progress plus a summary on a terminal, with meaningful exit codes, and every
command's ``--help`` ends with an example."""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from authgate.cli import build_parser
from authgate.cli_output import Report


def _commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(((*words, name), sub))
                found += _commands(sub, (*words, name))
    return found


class Cli:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.db_path = workdir / "a.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
        env["AUTHGATE_DATABASE_URL"] = f"sqlite+aiosqlite:///{self.db_path}"
        env["AUTHGATE_KEYS_DIR"] = str(workdir / "keys")
        env["AUTHGATE_LOG_LEVEL"] = "WARNING"
        self.env = env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # capture_output: stdout is a pipe, so the command prints JSON lines.
        return subprocess.run(
            [sys.executable, "-m", "authgate", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            timeout=120,
            check=False,
        )

    def lines(self, *args: str) -> tuple[int, list[dict[str, object]], str]:
        result = self.run(*args)
        records = [json.loads(line) for line in result.stdout.splitlines()]
        return result.returncode, records, result.stderr


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    assert cli.run("migrate").returncode == 0
    return cli


def test_every_command_has_an_example_in_its_help() -> None:
    commands = _commands(build_parser())
    assert len(commands) >= 13
    for words, parser in [((), build_parser()), *commands]:
        text = parser.format_help()
        assert "examples:\n  authgate" in text or "examples:\n  AUTHGATE_" in text, words
        assert parser.formatter_class is argparse.RawDescriptionHelpFormatter, words
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, (words, action.dest)


def test_help_exits_zero_and_wrong_usage_exits_two(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    helped = cli.run("keys", "reencrypt", "--help")
    assert helped.returncode == 0
    assert "examples:" in helped.stdout and "JSON lines" in helped.stdout
    wrong = cli.run("purge-expired", "--no-such-flag")
    assert wrong.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in wrong.stderr


def test_purge_expired_piped_is_one_json_summary(cli: Cli) -> None:
    code, records, stderr = cli.lines("purge-expired")
    assert code == 0
    (summary,) = records
    # One count per kind of row purged, all zero on a fresh database.
    assert {"action_tokens", "sessions", "oauth_states"} <= set(summary)
    assert set(summary.values()) == {0}
    assert "\r" not in stderr  # no progress line when nobody watches


def test_keys_reencrypt_piped_names_the_current_key(cli: Cli) -> None:
    code, records, _ = cli.lines("keys", "reencrypt")
    assert code == 0
    assert records == [{"reencrypted": 0, "key_id": "dev1"}]


def _dead(cli: Cli, *, retryable: int, wiped: int) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    with sqlite3.connect(cli.db_path) as db:
        for index in range(retryable + wiped):
            outbox_id = uuid.uuid4()
            ids.append(outbox_id)
            payload = b"ciphertext" if index < retryable else None
            db.execute(
                "INSERT INTO email_outbox (id, to_address, template, payload_ciphertext, status,"
                " attempts, next_attempt_at, last_error, created_at) VALUES (?, 'a@example.com',"
                " 'verify_email', ?, 'dead', 8, '2026-11-20 10:00:00.000000', 'x',"
                " '2026-11-20 10:00:00.000000')",
                (outbox_id.hex, payload),
            )
    return ids


def test_email_retry_piped_reports_each_message_and_fails_on_any(cli: Cli) -> None:
    good, gone = _dead(cli, retryable=1, wiped=1)
    code, records, stderr = cli.lines("email", "retry", str(good), str(gone), "nonsense")
    assert code == 1
    assert records == [
        {"id": str(good), "queued": True},
        {"id": str(gone), "queued": False, "error": "not a retryable dead message"},
        {"id": "nonsense", "queued": False, "error": "not a message id"},
        {"queued": 1, "failed": 2},
    ]
    assert stderr.count("error: ") == 2 and "Traceback" not in stderr


def test_email_retry_all(cli: Cli) -> None:
    ids = _dead(cli, retryable=3, wiped=1)
    code, records, _ = cli.lines("email", "retry", "--all")
    assert code == 0
    assert {r["id"] for r in records[:-1]} == {str(i) for i in ids[:3]}
    assert records[-1] == {"queued": 3, "failed": 0}
    # Nothing left to retry: still a summary, still success.
    assert cli.lines("email", "retry", "--all")[:2] == (0, [{"queued": 0, "failed": 0}])
    # Neither ids nor --all is wrong usage.
    assert cli.run("email", "retry").returncode == 2


def test_an_unreachable_database_is_one_error_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.env["AUTHGATE_DATABASE_URL"] = "postgresql+asyncpg://authgate:x@127.0.0.1:1/authgate"
    result = cli.run("purge-expired")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


async def test_on_a_terminal_progress_goes_to_stderr_and_a_summary_to_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()
    report = Report(out=out, err=err, tty=True)

    async def work() -> int:
        return 7

    assert await report.step("deleting expired rows", work()) == 7
    report.progress("queueing", 1, 3)
    report.item({"id": "x"}, "x queued again")
    report.summary({"queued": 1}, "1 queued again")
    assert "done: deleting expired rows" in err.getvalue()
    assert "queueing: 1/3" in err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0] == "x queued again"
    assert lines[1].startswith("1 queued again (")
    assert "{" not in out.getvalue()


def test_piped_output_is_json_lines_only() -> None:
    out, err = io.StringIO(), io.StringIO()
    report = Report(out=out, err=err, tty=False)
    report.progress("queueing", 1, 3)
    report.item({"id": "x", "queued": True}, "x queued again")
    report.summary({"queued": 1}, "1 queued again")
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"id": "x", "queued": True},
        {"queued": 1},
    ]
    assert err.getvalue() == ""
