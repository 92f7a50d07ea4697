"""No user enumeration by status, headers, body or timing."""

from __future__ import annotations

import statistics
import time

import httpx

from tests.conftest import TEST_PASSWORD, Flows

VOLATILE = {"x-request-id", "date", "content-length"}


def _stable_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower() not in VOLATILE}


async def test_register_existing_and_new_email_are_byte_identical(flows: Flows) -> None:
    account = await flows.signed_up()
    unverified = flows.new_email()
    await flows.register(unverified)
    new = await flows.register(flows.new_email())
    existing = await flows.register(account.email)
    again_unverified = await flows.register(unverified)
    for other in (existing, again_unverified):
        assert other.status_code == new.status_code == 202
        assert other.content == new.content
        assert _stable_headers(other) == _stable_headers(new)
    # The owner of the verified account hears about the attempt; no link is sent to them.
    notices = await flows.sink.wait_for(account.email, 2)  # verification + notice
    assert "/verify-email?token=" not in notices[-1].text
    assert "register" in notices[-1].subject.lower() or "sign" in notices[-1].subject.lower()


async def test_login_unknown_email_and_wrong_password_are_identical(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    account = await flows.signed_up()
    unknown = await flows.login("nobody-here@example.com", TEST_PASSWORD)
    wrong = await flows.login(account.email, "wrong password but long enough")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.content == wrong.content
    assert _stable_headers(unknown) == _stable_headers(wrong)
    assert unknown.json()["code"] == "invalid_credentials"
    assert unknown.headers["www-authenticate"] == "Bearer"


async def test_disabled_account_is_indistinguishable(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    from sqlalchemy import update

    from authgate.models import User

    account = await flows.signed_up()
    runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
    async with runtime.sessionmaker() as db:
        await db.execute(update(User).where(User.email == account.email).values(is_active=False))
        await db.commit()
    disabled = await flows.login(account.email, TEST_PASSWORD)
    unknown = await flows.login("nobody-here@example.com", TEST_PASSWORD)
    assert disabled.status_code == 401
    assert disabled.content == unknown.content


async def test_unverified_gets_403_only_after_the_right_password(flows: Flows) -> None:
    email = flows.new_email()
    await flows.register(email)
    wrong = await flows.login(email, "wrong password but long enough")
    assert wrong.status_code == 401
    right = await flows.login(email, TEST_PASSWORD)
    assert right.status_code == 403
    assert right.json()["code"] == "email_not_verified"


async def test_login_timing_unknown_vs_wrong_password(flows: Flows) -> None:
    """Median times stay within a factor 2 over 21 interleaved tries each."""
    account = await flows.signed_up()
    unknown: list[float] = []
    wrong: list[float] = []
    for i in range(21):
        for email, bucket in ((f"ghost{i}@example.com", unknown), (account.email, wrong)):
            start = time.perf_counter()
            response = await flows.login(email, "wrong password but long enough")
            bucket.append(time.perf_counter() - start)
            assert response.status_code == 401
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 <= ratio <= 2.0, (statistics.median(unknown), statistics.median(wrong))


async def test_resend_and_forgot_are_identical_for_every_address(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    account = await flows.signed_up()
    for path in ("/api/v1/auth/verify-email/resend", "/api/v1/auth/password/forgot"):
        known = await client.post(path, json={"email": account.email})
        unknown = await client.post(path, json={"email": "nobody-here@example.com"})
        assert known.status_code == unknown.status_code == 202
        assert known.content == unknown.content
