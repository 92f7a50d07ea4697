"""Development defaults just work; production refuses every unsafe default."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest

from authgate.config import Settings
from authgate.core.limits import Limit
from authgate.runtime import Runtime

SAFE: dict[str, Any] = {
    "_env_file": None,
    "env": "production",
    "public_url": "https://auth.example.com",
    "database_url": "postgresql+asyncpg://u@db/authgate",
    "secret_key": "kQ3v_Zt8xN2pWm7cR5yB1hL9sD4fG6jAeU0oI-Tq",
    "signing_keys_dir": "/etc/authgate/keys",
    "encryption_keys": "k1:" + base64.b64encode(os.urandom(32)).decode(),
    "email_backend": "ses",
    "frontend_url": "https://app.example.com",
}


def test_development_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.database_url.startswith("sqlite+aiosqlite")
    assert settings.jwt_algorithm == "EdDSA"
    assert settings.cors_allowlist == [settings.frontend_url]
    assert settings.redirect_allowlist == [settings.frontend_url]
    assert settings.password_min_length == 15
    assert settings.production_problems()  # plenty, but development does not care


def test_safe_production_settings_have_no_problems() -> None:
    assert Settings(**SAFE).production_problems() == []


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"secret_key": None}, "SECRET_KEY"),
        ({"secret_key": "short"}, "SECRET_KEY"),
        ({"signing_keys_dir": None}, "SIGNING_KEYS_DIR"),
        ({"encryption_keys": None}, "ENCRYPTION_KEYS"),
        ({"email_backend": "console"}, "console"),
        ({"database_url": "sqlite+aiosqlite:///./x.db"}, "SQLite"),
        ({"public_url": "http://auth.example.com"}, "https"),
        ({"secret_key": "s" * 48}, "low entropy"),
        ({"secret_key": "abcd" * 12}, "low entropy"),
        ({"secret_key": "Xy7!Qz2#" * 6}, "low entropy"),
        ({"rate_limits_enabled": False}, "RATE_LIMITS_ENABLED"),
        ({"trusted_proxies": ["0.0.0.0/0"]}, "0.0.0.0/0"),
        ({"trusted_proxies": ["10.0.0.0/8", "::/0"]}, "::/0"),
        ({"trusted_proxies": ["1.2.3.4/0"]}, "1.2.3.4/0"),
        ({"introspection_clients": ["rs:" + "x" * 31]}, "shorter than 32 characters"),
        ({"frontend_url": "http://app.example.com"}, "not https"),
        ({"allowed_redirect_urls": ["https://a.example", "http://b.example"]}, "not https"),
        (
            {"password_breach_check": "hibp", "hibp_url": "http://hibp.internal"},
            "AUTHGATE_HIBP_URL",
        ),
        (
            {"refresh_cookie_samesite": "none", "refresh_cookie_secure": False},
            "AUTHGATE_REFRESH_COOKIE_SAMESITE=none without AUTHGATE_REFRESH_COOKIE_SECURE",
        ),
        ({"refresh_cookie_secure": False}, "AUTHGATE_REFRESH_COOKIE_SECURE=false"),
        (
            {"webauthn_origins": ["https://app.example.com", "http://app.example.com"]},
            "AUTHGATE_WEBAUTHN_ORIGINS: 'http://app.example.com' is not https",
        ),
    ],
)
def test_production_refuses_unsafe_defaults(override: dict[str, Any], fragment: str) -> None:
    settings = Settings(**{**SAFE, **override})
    problems = settings.production_problems()
    assert any(fragment in p for p in problems), problems
    with pytest.raises(RuntimeError, match="refusing to start in production"):
        Runtime.build(settings)


def test_sqlite_allowed_in_production_when_asked() -> None:
    settings = Settings(
        **{**SAFE, "database_url": "sqlite+aiosqlite:///./x.db", "allow_sqlite_in_production": True}
    )
    assert settings.production_problems() == []


@pytest.mark.parametrize(
    "override",
    [
        {"refresh_cookie_samesite": "none"},
        {"refresh_cookie_samesite": "lax", "refresh_cookie_domain": "example.com"},
        {"refresh_cookie_name": "__Secure-authgate_refresh"},
    ],
)
def test_safe_refresh_cookie_settings_in_production(override: dict[str, Any]) -> None:
    assert Settings(**{**SAFE, **override}).production_problems() == []


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"refresh_cookie_name": "a;b"}, "RFC 6265 token"),
        ({"refresh_cookie_name": "a b"}, "RFC 6265 token"),
        ({"refresh_cookie_name": "__Host-refresh"}, "__Host-"),
        (
            {"refresh_cookie_name": "__Secure-refresh", "refresh_cookie_secure": False},
            "__Secure-",
        ),
        ({"refresh_cookie_domain": "example.com; Path=/"}, "host name"),
        ({"refresh_cookie_domain": "example.com:443"}, "host name"),
        ({"refresh_cookie_domain": "example.com/path"}, "host name"),
        ({"refresh_cookie_domain": "exa mple.com"}, "host name"),
        ({"refresh_cookie_samesite": "always"}, "refresh_cookie_samesite"),
    ],
)
def test_malformed_refresh_cookie_settings_are_refused(
    override: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        Settings(_env_file=None, **override)


def test_refresh_cookie_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_REFRESH_COOKIE_NAME", "sid_refresh")
    monkeypatch.setenv("AUTHGATE_REFRESH_COOKIE_SAMESITE", "None")
    monkeypatch.setenv("AUTHGATE_REFRESH_COOKIE_SECURE", "true")
    monkeypatch.setenv("AUTHGATE_REFRESH_COOKIE_DOMAIN", ".example.com")
    settings = Settings(_env_file=None)
    assert settings.refresh_cookie_name == "sid_refresh"
    assert settings.refresh_cookie_samesite == "none"
    assert settings.refresh_cookie_secure is True
    assert settings.refresh_cookie_domain == ".example.com"
    monkeypatch.setenv("AUTHGATE_REFRESH_COOKIE_DOMAIN", "")
    assert Settings(_env_file=None).refresh_cookie_domain is None


def test_refresh_cookie_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.refresh_cookie_name == "authgate_refresh"
    assert settings.refresh_cookie_samesite == "strict"
    assert settings.refresh_cookie_secure is True
    assert settings.refresh_cookie_domain is None


def test_wildcard_cors_refused() -> None:
    with pytest.raises(ValueError, match="wildcard"):
        Settings(_env_file=None, cors_origins=["*"])


def test_env_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    monkeypatch.setenv("AUTHGATE_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")
    monkeypatch.setenv("AUTHGATE_RATE_LIMITS", '{"login_ip": "5/minute"}')
    monkeypatch.setenv("AUTHGATE_JWT_LEEWAY", "61")
    with pytest.raises(ValueError, match="jwt_leeway"):
        Settings(_env_file=None)
    monkeypatch.setenv("AUTHGATE_JWT_LEEWAY", "30")
    settings = Settings(_env_file=None)
    assert settings.cors_allowlist == ["https://a.example", "https://b.example"]
    assert settings.trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
    assert settings.effective_rate_limits[Limit.login_ip] == "5/minute"
    monkeypatch.setenv("AUTHGATE_RATE_LIMITS", '{"no_such_limit": "5/minute"}')
    with pytest.raises(ValueError, match="unknown rate limit"):
        Settings(_env_file=None)


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_ses_endpoint_means_the_aws_default(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AUTHGATE_SES_ENDPOINT_URL", value)
    assert Settings(_env_file=None).ses_endpoint_url is None
    monkeypatch.setenv("AUTHGATE_SES_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert Settings(_env_file=None).ses_endpoint_url == "http://127.0.0.1:5000"


def test_random_secret_keys_pass_the_entropy_check() -> None:
    import secrets

    from authgate.config import looks_random

    for _ in range(200):
        assert looks_random(secrets.token_urlsafe(32))
        assert looks_random(secrets.token_hex(32))
        assert looks_random(base64.b64encode(os.urandom(32)).decode())
    assert not looks_random("")
    assert not looks_random("0123456789abcdef" * 2)  # 32 bytes, but 128 bits only by pattern


def test_workers_without_redis_refused_in_production() -> None:
    settings = Settings(**SAFE)
    assert settings.production_problems(workers=1) == []
    problems = settings.production_problems(workers=4)
    assert any("4 workers without AUTHGATE_REDIS_URL" in p for p in problems), problems
    with_redis = Settings(**{**SAFE, "redis_url": "redis://redis:6379/0"})
    assert with_redis.production_problems(workers=4) == []


def test_introspection_secrets_are_secret_str() -> None:
    secret = "z" * 40
    settings = Settings(_env_file=None, introspection_clients=f"rs1:{secret},rs2:a:b")
    assert secret not in repr(settings) and secret not in str(settings.model_dump())
    assert settings.introspection_secrets["rs1"].get_secret_value() == secret
    plain = {cid: s.get_secret_value() for cid, s in settings.introspection_secrets.items()}
    assert plain == {"rs1": secret, "rs2": "a:b"}
    with pytest.raises(ValueError, match="client_id:secret"):
        Settings(_env_file=None, introspection_clients=["no-colon"])


def test_serve_refuses_workers_without_redis_in_production(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    from authgate import cli

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(k))
    monkeypatch.setattr(cli, "_settings", lambda: Settings(**SAFE))
    assert cli.main(["serve", "--workers", "2"]) == 1
    assert "refusing to start in production" in capsys.readouterr().err
    assert started == []

    monkeypatch.setattr(cli, "_settings", lambda: Settings(_env_file=None))
    assert cli.main(["serve", "--workers", "2"]) == 0
    assert "warning: 2 workers without AUTHGATE_REDIS_URL" in capsys.readouterr().err
    assert len(started) == 1


def test_an_http_range_api_is_fine_while_the_breach_check_is_off() -> None:
    settings = Settings(**{**SAFE, "hibp_url": "http://hibp.internal"})
    assert settings.production_problems() == []
