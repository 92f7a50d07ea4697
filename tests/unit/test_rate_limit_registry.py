"""The rate-limit registry (core/limits.py): the docs table matches it, settings obey it, and
each limit can only be spent by the rule of what it is counted per."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from authgate.config import Settings
from authgate.core.limits import DEFAULT_RATE_LIMITS, LIMITS, Limit, Per, account_key
from authgate.core.ratelimit import RateLimiter
from authgate.core.store import MemoryStore
from authgate.deps import per_ip, per_ip_by_grant

DOC = Path(__file__).resolve().parents[2] / "docs" / "rate-limits.md"
ROW = re.compile(
    r"^\| `(?P<name>[a-z_]+)` \| `(?P<default>[^`]+)` \| (?P<per>[^|]+) \| (?P<for>.+) \|$"
)


def doc_table() -> list[tuple[str, str, str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Named limits", 1)[1].split("\n## ", 1)[0]
    rows = [m for line in section.splitlines() if (m := ROW.match(line))]
    return [(m["name"], m["default"], m["per"].strip(), m["for"].strip()) for m in rows]


def test_the_docs_table_is_the_registry() -> None:
    registry = [
        (limit.value, spec.default, spec.counted_per, spec.meant_for)
        for limit, spec in LIMITS.items()
    ]
    assert doc_table() == registry


def test_every_limit_has_one_spec_and_a_parsable_default() -> None:
    assert set(LIMITS) == set(Limit)
    assert {limit.value: limit.spec.default for limit in Limit} == DEFAULT_RATE_LIMITS
    limiter = RateLimiter(Settings(_env_file=None), MemoryStore())
    assert set(limiter.items) == set(Limit)


def test_overrides_are_checked_against_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_RATE_LIMITS", '{"login_ip": "5/minute"}')
    settings = Settings(_env_file=None)
    assert settings.effective_rate_limits[Limit.login_ip] == "5/minute"
    assert settings.effective_rate_limits[Limit.register_ip] == Limit.register_ip.spec.default
    for bad, message in (
        ('{"login_ipp": "5/minute"}', "unknown rate limit names: \\['login_ipp'\\]"),
        ('{"login_ip": "lots"}', "rate limit 'login_ip': cannot parse 'lots'"),
        ('{"login_ip": "5/fortnight"}', "rate limit 'login_ip': cannot parse"),
        ('{"login_ip": 5}', "rate limit 'login_ip': cannot parse"),
        ('["login_ip"]', "JSON object"),
    ):
        monkeypatch.setenv("AUTHGATE_RATE_LIMITS", bad)
        with pytest.raises(ValueError, match=message):
            Settings(_env_file=None)


@pytest.mark.parametrize("limit", [limit for limit in Limit if limit.spec.per is not Per.client_ip])
def test_only_per_ip_limits_go_on_a_route(limit: Limit) -> None:
    with pytest.raises(ValueError, match="not counted per client IP"):
        per_ip(limit)
    with pytest.raises(ValueError, match="not counted per client IP"):
        per_ip_by_grant({"password": limit})


async def test_a_limit_is_spent_only_by_its_own_rule() -> None:
    limiter = RateLimiter(Settings(_env_file=None), MemoryStore())
    with pytest.raises(TypeError, match="counted per client_ip"):
        await limiter.per_user(Limit.login_ip, uuid.uuid4())
    with pytest.raises(TypeError, match="counted per user"):
        await limiter.per_address(Limit.email_change_user, "a@example.com")
    with pytest.raises(TypeError, match="counted per address"):
        await limiter.per_ip(Limit.forgot_password_email, "203.0.113.9")
    with pytest.raises(TypeError, match="counted per client_ip"):
        await limiter.per_client(Limit.client_auth_ip, "svc")
    # the right rule spends: one key per normalised address, whatever the raw input's spaces
    await limiter.per_address(Limit.forgot_password_email, None, "  Not An Address ")
    await limiter.per_address(Limit.forgot_password_email, None, "Not An Address")
    await limiter.per_address(Limit.forgot_password_email, None, "Not An Address")
    assert not await limiter.test(Limit.forgot_password_email, account_key(None, "not an address"))
