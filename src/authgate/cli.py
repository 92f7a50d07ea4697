"""The ``authgate`` command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import uuid
from collections.abc import Sequence

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
            from authgate.housekeeping import reencrypt_all

            count = asyncio.run(reencrypt_all(settings))
            print(f"re-encrypted {count} values with the current key")  # noqa: T201
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

    counts = asyncio.run(purge_expired(_settings()))
    print(json.dumps(counts))  # noqa: T201
    return 0


def cmd_email(args: argparse.Namespace) -> int:
    from authgate.housekeeping import list_dead_email, retry_dead_email

    settings = _settings()
    if args.email_command == "dead":
        for row in asyncio.run(list_dead_email(settings, args.limit)):
            print(json.dumps(row))  # noqa: T201
    else:
        try:
            outbox_id = uuid.UUID(args.id)
        except ValueError:
            print(f"error: {args.id!r} is not a message id", file=sys.stderr)  # noqa: T201
            return 1
        asyncio.run(retry_dead_email(settings, outbox_id))
        print(f"{outbox_id} queued again")  # noqa: T201
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authgate", description="authgate authentication service")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="upgrade the database schema").set_defaults(func=cmd_migrate)
    sub.add_parser("openapi", help="print the OpenAPI spec").set_defaults(func=cmd_openapi)
    sub.add_parser(
        "worker", help="deliver the email and webhook outboxes (and run housekeeping)"
    ).set_defaults(func=cmd_worker)
    sub.add_parser("purge-expired", help="delete expired tokens and sessions").set_defaults(
        func=cmd_purge_expired
    )

    admin = sub.add_parser("create-admin", help="create (or promote) a verified superuser")
    admin.add_argument("email")
    admin.add_argument("--password-stdin", action="store_true")
    admin.set_defaults(func=cmd_create_admin)

    keys = sub.add_parser("keys", help="manage the signing and encryption keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("rotate", help="make a new signing key current")
    keys_sub.add_parser("list", help="list signing keys (no private material)")
    retire = keys_sub.add_parser("retire", help="remove an old signing key")
    retire.add_argument("kid")
    keys_sub.add_parser("reencrypt", help="re-encrypt stored secrets with the current key")
    keys.set_defaults(func=cmd_keys)

    email = sub.add_parser("email", help="look at and retry undeliverable email")
    email_sub = email.add_subparsers(dest="email_command", required=True)
    dead = email_sub.add_parser("dead", help="list dead messages, newest first (JSON lines)")
    dead.add_argument("--limit", type=int, default=100)
    retry = email_sub.add_parser("retry", help="send a dead message again (after a fix)")
    retry.add_argument("id")
    email.set_defaults(func=cmd_email)

    hooks = sub.add_parser("webhooks", help="look at, retry and test webhook delivery")
    hooks_sub = hooks.add_subparsers(dest="webhooks_command", required=True)
    hooks_dead = hooks_sub.add_parser("dead", help="list dead events, newest first (JSON lines)")
    hooks_dead.add_argument("--limit", type=int, default=100)
    hooks_retry = hooks_sub.add_parser("retry", help="send a dead event again (after a fix)")
    hooks_retry.add_argument("id", help="the event's webhook-id (msg_…)")
    hooks_test = hooks_sub.add_parser(
        "test", help="send a signed webhook.test event to a configured endpoint now"
    )
    hooks_test.add_argument("url", help="the endpoint's URL, as in AUTHGATE_WEBHOOKS")
    hooks.set_defaults(func=cmd_webhooks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from authgate.core.errors import AuthgateError

    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except AuthgateError as exc:  # e.g. a password refused by the policy in create-admin
        print(f"error: {exc.detail}", file=sys.stderr)  # noqa: T201
        return 1
    return result


if __name__ == "__main__":
    raise SystemExit(main())
