"""The ``authgate`` command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import uuid
from collections.abc import Sequence

from authgate.cli_output import Report
from authgate.config import Settings


def _settings() -> Settings:
    return Settings()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings()
    if args.workers > 1 and settings.redis_url is None:
        # Each process would keep its own rate limits, throttle and revocation list.
        message = (
            f"{args.workers} workers without AUTHGATE_REDIS_URL: rate limits, the login "
            "throttle and revocations are per process"
        )
        if settings.is_production:
            print(f"error: refusing to start in production: {message}", file=sys.stderr)  # noqa: T201
            return 1
        print(f"warning: {message}", file=sys.stderr)  # noqa: T201
    uvicorn.run(
        "authgate.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=False,  # client IPs are resolved from AUTHGATE_TRUSTED_PROXIES only
        server_header=False,
        log_level=settings.log_level.lower(),
    )
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    from authgate.core.migrate import upgrade

    upgrade(_settings())
    print("database is at the latest revision")  # noqa: T201
    return 0


def cmd_openapi(_args: argparse.Namespace) -> int:
    from authgate.app import create_app

    app = create_app(_settings())
    print(json.dumps(app.openapi(), indent=2))  # noqa: T201
    return 0


def cmd_worker(_args: argparse.Namespace) -> int:
    from authgate.core.email import run_worker
    from authgate.core.logging import configure_logging
    from authgate.runtime import Runtime

    settings = _settings()
    configure_logging(settings)

    async def main() -> None:
        # The runtime's email service knows the outbox jobs (forgot password, resend); its
        # housekeeper purges expired OAuth states.
        runtime = Runtime.build(settings, with_dispatcher=False)
        await runtime.housekeeper.start()
        await runtime.start_webhook_delivery()
        try:
            await run_worker(settings, service=runtime.email)
        finally:
            await runtime.close()

    asyncio.run(main())
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from authgate.core.security.keys import KeyRingError, SigningKeyRing

    settings = _settings()
    directory = settings.effective_signing_keys_dir
    try:
        if args.keys_command == "rotate":
            kid = SigningKeyRing.rotate(directory, settings.jwt_algorithm)
            delay = settings.key_reload_interval
            print(f"new signing key {kid} is current; processes pick it up within {delay}s")  # noqa: T201
        elif args.keys_command == "list":
            keys = SigningKeyRing.list(directory)
            for info in keys:
                flag = "current" if info.current else ""
                print(f"{info.kid}\t{info.alg}\t{info.created_at}\t{flag}")  # noqa: T201
            if not keys:
                # Not an error: a fresh install has no key until `serve` (development) or
                # `keys rotate` creates one.
                print(  # noqa: T201
                    f"no signing keys in {directory}: `authgate keys rotate` creates one "
                    "(in development `authgate serve` also does)",
                    file=sys.stderr,
                )
        elif args.keys_command == "retire":
            SigningKeyRing.retire(directory, args.kid)
            print(f"retired {args.kid}")  # noqa: T201
        elif args.keys_command == "reencrypt":
            from authgate.core.security.secrets import encryption_keys
            from authgate.housekeeping import reencrypt_all

            report = Report()
            current = encryption_keys(settings)[0].kid
            count = asyncio.run(report.step("re-encrypting", reencrypt_all(settings)))
            report.summary(
                {"reencrypted": count, "key_id": current},
                f"re-encrypted {count} values with the current key {current}",
            )
    except KeyRingError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


def cmd_create_admin(args: argparse.Namespace) -> int:
    from authgate.housekeeping import create_admin

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
    asyncio.run(create_admin(_settings(), args.email, password))
    print(f"superuser {args.email} is ready")  # noqa: T201
    return 0


def cmd_purge_expired(_args: argparse.Namespace) -> int:
    from authgate.housekeeping import purge_expired

    report = Report()
    counts = asyncio.run(report.step("deleting expired rows", purge_expired(_settings())))
    human = ", ".join(f"{count} {table.replace('_', ' ')}" for table, count in counts.items())
    report.summary(counts, f"deleted {human}")
    return 0


def cmd_email(args: argparse.Namespace) -> int:
    from authgate.housekeeping import list_dead_email

    settings = _settings()
    if args.email_command == "dead":
        for row in asyncio.run(list_dead_email(settings, args.limit)):
            print(json.dumps(row))  # noqa: T201
        return 0
    return asyncio.run(_retry_dead_email(settings, args))


async def _retry_dead_email(settings: Settings, args: argparse.Namespace) -> int:
    """``email retry ID…`` / ``--all``: each message queued again, one report line each; exit 1
    when any could not be (unknown id, not dead, payload gone)."""
    from authgate.core.errors import NotFound
    from authgate.housekeeping import list_dead_email, retry_dead_email

    report = Report()
    if args.all:
        rows = await list_dead_email(settings, args.limit)
        ids = [row["id"] for row in rows if row["retryable"]]
    else:
        ids = list(args.ids)
        if not ids:
            report.error("name the messages to retry (IDs from `authgate email dead`) or --all")
            return 2
    queued = failed = 0
    for index, raw in enumerate(ids, start=1):
        report.progress("queueing dead messages again", index - 1, len(ids))
        try:
            outbox_id = uuid.UUID(raw)
            await retry_dead_email(settings, outbox_id)
        except ValueError:
            failed += 1
            report.error(f"{raw!r} is not a message id")
            report.item({"id": raw, "queued": False, "error": "not a message id"}, None)
            continue
        except NotFound as exc:
            failed += 1
            report.error(exc.detail)
            report.item({"id": raw, "queued": False, "error": "not a retryable dead message"}, None)
            continue
        queued += 1
        report.item({"id": str(outbox_id), "queued": True}, f"{outbox_id} queued again")
    report.summary(
        {"queued": queued, "failed": failed},
        f"{queued} queued again, {failed} failed" if ids else "no retryable dead messages",
    )
    return 1 if failed else 0


#: Shown under every command's --help (argparse epilogs, kept as written).
EPILOG_OUTPUT = """
Output: on a terminal, progress on stderr and a summary on stdout; piped, JSON lines on stdout
(one object per item, the summary last). Exit status: 0 done, 1 failed, 2 wrong usage."""


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    examples: str,
    *,
    output: bool = False,
) -> argparse.ArgumentParser:
    """A sub-command whose --help ends with ``examples`` (and the output rules for long ones)."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples.strip().splitlines())
    return sub.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=epilog + ("\n" + EPILOG_OUTPUT if output else ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def cmd_users(args: argparse.Namespace) -> int:
    from authgate.housekeeping import reset_mfa

    was_on = asyncio.run(reset_mfa(_settings(), args.email))
    outcome = "removed" if was_on else "was not on; nothing to remove"
    print(f"two-step sign-in of {args.email}: {outcome}")  # noqa: T201
    return 0


def cmd_webhooks(args: argparse.Namespace) -> int:
    from authgate.webhooks import operations

    settings = _settings()
    if args.webhooks_command == "dead":
        for row in asyncio.run(operations.list_dead(settings, args.limit)):
            print(json.dumps(row))  # noqa: T201
        return 0
    if args.webhooks_command == "retry":
        asyncio.run(operations.retry_dead(settings, args.id))
        print(f"{args.id} queued again")  # noqa: T201
        return 0
    endpoint = operations.endpoint_for_url(settings, args.url)
    if endpoint is None:
        print("error: that URL is not an endpoint of AUTHGATE_WEBHOOKS", file=sys.stderr)  # noqa: T201
        return 1
    outcome = asyncio.run(operations.send_test(settings, endpoint))
    print(json.dumps(outcome))  # noqa: T201
    return 0 if outcome["ok"] else 1


def cmd_sessions(_args: argparse.Namespace) -> int:
    from authgate.housekeeping import revoke_all_sessions

    settings = _settings()
    report = Report()
    ended = asyncio.run(report.step("revoking every session", revoke_all_sessions(settings)))
    report.summary(
        {"sessions_ended": ended},
        f"ended {ended} sessions; access tokens issued before now are refused on every process "
        "within a second",
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authgate",
        description="authgate authentication service",
        epilog="examples:\n  authgate serve --port 8000\n  authgate keys rotate\n"
        "  authgate purge-expired | jq .\n\n"
        "Every setting is an AUTHGATE_* environment variable (also read from ./.env).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = _command(
        sub,
        "serve",
        "serve the HTTP API",
        """
authgate serve                                 # http://127.0.0.1:8000
authgate serve --host 0.0.0.0 --port 8000 --workers 2   # more than one needs AUTHGATE_REDIS_URL
""",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument(
        "--workers", type=int, default=1, help="server processes (more than one needs Redis)"
    )
    serve.set_defaults(func=cmd_serve)

    _command(
        sub,
        "migrate",
        "upgrade the database schema",
        "AUTHGATE_DATABASE_URL=postgresql+asyncpg://authgate:…@db/authgate authgate migrate",
    ).set_defaults(func=cmd_migrate)
    _command(
        sub, "openapi", "print the OpenAPI spec", "authgate openapi > openapi.json"
    ).set_defaults(func=cmd_openapi)
    _command(
        sub,
        "worker",
        "deliver the email and webhook outboxes (and run housekeeping)",
        "AUTHGATE_EMAIL_DISPATCHER_ENABLED=false authgate serve &   # web processes only\n"
        "authgate worker                                            # delivers the outboxes",
    ).set_defaults(func=cmd_worker)
    _command(
        sub,
        "purge-expired",
        "delete expired tokens, ended sessions, old sign-in pairs",
        """
authgate purge-expired                 # progress, then "deleted 3 action tokens, …"
authgate purge-expired | jq .sessions  # piped: {"action_tokens": 3, "sessions": 2, …}
""",
        output=True,
    ).set_defaults(func=cmd_purge_expired)

    admin = _command(
        sub,
        "create-admin",
        "create (or promote) a verified superuser",
        """
authgate create-admin admin@example.com                    # asks for the password
printf '%s\\n' "$PASSWORD" | authgate create-admin admin@example.com --password-stdin
""",
    )
    admin.add_argument("email", help="the account's address (created if new)")
    admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    admin.set_defaults(func=cmd_create_admin)

    keys = _command(
        sub,
        "keys",
        "manage the signing and encryption keys",
        "authgate keys rotate\nauthgate keys list",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    _command(
        keys_sub,
        "rotate",
        "make a new signing key current",
        "authgate keys rotate      # running processes pick it up within "
        "AUTHGATE_KEY_RELOAD_INTERVAL",
    )
    _command(
        keys_sub,
        "list",
        "list signing keys (no private material)",
        "authgate keys list        # kid<TAB>alg<TAB>created<TAB>current",
    )
    retire = _command(
        keys_sub,
        "retire",
        "remove an old signing key",
        "authgate keys retire 2026-11-01T10:00:00Z-ab12   # after the access token lifetime",
    )
    retire.add_argument("kid", help="the key id, as `authgate keys list` shows it")
    _command(
        keys_sub,
        "reencrypt",
        "re-encrypt stored secrets with the current key",
        """
AUTHGATE_ENCRYPTION_KEYS=k2:NEW,k1:OLD authgate keys reencrypt
authgate keys reencrypt | jq .reencrypted   # piped: {"reencrypted": 12, "key_id": "k2"}
""",
        output=True,
    )
    keys.set_defaults(func=cmd_keys)

    email = _command(
        sub,
        "email",
        "look at and retry undeliverable email",
        "authgate email dead\nauthgate email retry --all",
    )
    email_sub = email.add_subparsers(dest="email_command", required=True)
    dead = _command(
        email_sub,
        "dead",
        "list dead messages, newest first (JSON lines)",
        "authgate email dead --limit 20 | jq -r 'select(.retryable) | .id'",
    )
    dead.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    retry = _command(
        email_sub,
        "retry",
        "send dead messages again (after a fix)",
        """
authgate email retry 3f1c…            # one message
authgate email retry --all            # every retryable dead message (up to --limit)
authgate email dead | jq -r 'select(.retryable) | .id' | xargs authgate email retry
""",
        output=True,
    )
    retry.add_argument("ids", nargs="*", metavar="ID", help="message ids from `email dead`")
    retry.add_argument(
        "--all", action="store_true", help="retry every retryable dead message instead"
    )
    retry.add_argument(
        "--limit", type=int, default=1000, help="with --all: at most this many (default 1000)"
    )
    email.set_defaults(func=cmd_email)

    users = _command(
        sub,
        "users",
        "operator actions on one account",
        "authgate users reset-mfa ada@example.com",
    )
    users_sub = users.add_subparsers(dest="users_command", required=True)
    reset = _command(
        users_sub,
        "reset-mfa",
        "remove an account's TOTP and recovery codes (the owner is mailed)",
        "authgate users reset-mfa ada@example.com   # a lost phone and lost recovery codes",
    )
    reset.add_argument("email", help="the account's address")
    users.set_defaults(func=cmd_users)
    hooks = _command(
        sub,
        "webhooks",
        "look at, retry and test webhook delivery",
        """
authgate webhooks dead | jq .id     # events that gave up after 24 h (JSON lines)
authgate webhooks retry msg_0123456789abcdef0123456789abcdef
authgate webhooks test https://api.example.com/hooks/authgate
""",
    )
    hooks_sub = hooks.add_subparsers(dest="webhooks_command", required=True)
    hooks_dead = _command(
        hooks_sub,
        "dead",
        "list dead events, newest first (JSON lines)",
        "authgate webhooks dead --limit 20",
    )
    hooks_dead.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    hooks_retry = _command(
        hooks_sub,
        "retry",
        "send a dead event again (after a fix)",
        "authgate webhooks retry msg_0123456789abcdef0123456789abcdef",
    )
    hooks_retry.add_argument("id", help="the event's webhook-id (msg_…)")
    hooks_test = _command(
        hooks_sub,
        "test",
        "send a signed webhook.test event to a configured endpoint now",
        "authgate webhooks test https://api.example.com/hooks/authgate",
    )
    hooks_test.add_argument("url", help="the endpoint's URL, as in AUTHGATE_WEBHOOKS")
    hooks.set_defaults(func=cmd_webhooks)

    sessions = _command(
        sub,
        "sessions",
        "operator actions on every session",
        "authgate sessions revoke-all",
    )
    sessions_sub = sessions.add_subparsers(dest="sessions_command", required=True)
    _command(
        sessions_sub,
        "revoke-all",
        "end every session of every user (emergency revocation)",
        """
authgate sessions revoke-all              # after a breach: everyone signs in again
authgate sessions revoke-all | jq .sessions_ended   # piped: {"sessions_ended": 1234}
""",
        output=True,
    )
    sessions.set_defaults(func=cmd_sessions)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from authgate.core.errors import AuthgateError

    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except AuthgateError as exc:  # e.g. a password refused by the policy in create-admin
        print(f"error: {exc.detail}", file=sys.stderr)  # noqa: T201
        return 1
    except (SQLAlchemyError, OSError) as exc:
        # The database (or a file) is unreachable: one line, no traceback. The engines hide
        # bound parameters, and only the error's class is named.
        print(f"error: {type(exc).__name__}: the operation failed", file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)  # noqa: T201
        return 130
    return result


if __name__ == "__main__":
    raise SystemExit(main())
