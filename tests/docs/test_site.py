"""The documentation site: ``mkdocs build --strict`` succeeds offline (a broken link, anchor or
reference fails it), and the generated references cover the code — every setting, route, CLI
command, metric and public method of the documented services — so nothing added to the code
can be missing from the site."""

from __future__ import annotations

import html
import importlib
import inspect
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from authgate.cli import build_parser
from authgate.config import Settings
from docsgen import cli_ref, http_ref, settings_ref

ROOT = Path(__file__).resolve().parents[2]
#: The services of reference/python.md (issue 18), as the page lists them.
SERVICES = (
    "authgate.auth.service.AuthService",
    "authgate.sessions.service.SessionService",
    "authgate.verification.service.VerificationService",
    "authgate.password_reset.service.PasswordResetService",
    "authgate.core.security.passwords.PasswordService",
    "authgate.core.security.jwt.JWTService",
    "authgate.core.email.service.EmailService",
    "authgate.core.security.crypto.EncryptionService",
    "authgate.oauth.vault.ProviderTokenVault",
    "authgate.oauth.service.OAuthService",
)
#: A full strict build takes about 10 s here; well past that something is wrong.
BUILD_BUDGET_SECONDS = 60


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env["NO_MKDOCS_2_WARNING"] = "1"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < BUILD_BUDGET_SECONDS, f"mkdocs build took {elapsed:.0f} s"
    return out


def page(site: Path, name: str) -> str:
    return html.unescape((site / name / "index.html").read_text(encoding="utf-8"))


def test_every_setting_is_in_the_settings_reference(site: Path) -> None:
    text = page(site, "reference/settings")
    for name in Settings.model_fields:
        env = f"AUTHGATE_{name.upper()}"
        assert f'id="{env.lower()}"' in text, env
        assert env in text


def test_every_setting_is_documented_on_its_field() -> None:
    """STYLE 5b: settings are documented on the field (a ``#:`` comment or a description), so
    the generated reference says what each one does."""
    undocumented = [doc.env for doc in settings_ref.setting_docs() if not doc.documented]
    assert not undocumented, f"add a #: comment above these fields in config.py: {undocumented}"


def test_every_route_is_in_the_http_reference(site: Path) -> None:
    text = page(site, "reference/http")
    app = http_ref.build_app()
    spec = app.openapi()
    count = 0
    for path, item in spec["paths"].items():
        for method in item:
            if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                count += 1
                anchor = http_ref.operation_anchor(method, path)
                assert f'id="{anchor}"' in text, (method, path)
                assert f"{method.upper()} {path}" in text
    assert count > 30
    for schema in spec["components"]["schemas"]:
        assert f'id="{http_ref.schema_anchor(schema)}"' in text, schema
    # And the routes the OpenAPI document leaves out on purpose.
    unlisted = [path for _, path in http_ref.unlisted_routes(app)]
    assert {"/metrics", "/docs", "/openapi.json"} <= set(unlisted)
    for path in unlisted:
        assert f"<code>{path}</code>" in text, path


def test_every_cli_command_is_in_the_cli_reference(site: Path) -> None:
    text = page(site, "reference/cli")
    commands = list(cli_ref.commands(build_parser()))
    assert len(commands) >= 10
    for words, _, parser in commands:
        assert f'id="{cli_ref.anchor(words)}"' in text, words
        assert f"usage: {parser.prog}" in text, words
        assert "example" in text.lower()


def test_every_metric_is_in_the_metrics_reference(site: Path) -> None:
    text = page(site, "reference/metrics")
    names = [m.name for m in REGISTRY.collect() if m.name.startswith("authgate_")]
    assert len(names) >= 10
    for name in names:
        assert f"<code>{name}" in text, name


def _public_methods(path: str) -> list[str]:
    module, name = path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    return [
        member
        for member, value in vars(cls).items()
        if not member.startswith("_")
        and (callable(value) or isinstance(value, property | staticmethod | classmethod))
    ]


def test_every_public_method_of_the_services_is_in_the_python_reference(site: Path) -> None:
    text = page(site, "reference/python")
    for service in SERVICES:
        assert f'id="{service}"' in text, service
        methods = _public_methods(service)
        assert methods, service
        for method in methods:
            assert f'id="{service}.{method}"' in text, f"{service}.{method}"


def test_the_services_public_methods_have_docstrings() -> None:
    missing = [
        f"{service}.{method}"
        for service in SERVICES
        for method in _public_methods(service)
        if not inspect.getdoc(getattr(_class(service), method))
    ]
    assert not missing, missing


def _class(path: str) -> type:
    module, name = path.rsplit(".", 1)
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def test_the_site_fetches_nothing(site: Path) -> None:
    """Offline: no font, script or stylesheet from another host (Material's `font: false`,
    local search)."""
    external = re.compile(r'<(?:script|link|img)\b[^>]*(?:src|href)="(?:https?:)?//', re.I)
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20
    for html_file in pages:
        offending = external.findall(html_file.read_text(encoding="utf-8"))
        assert not offending, (html_file, offending)
    assert (site / "search" / "search_index.json").exists()


def test_the_references_are_not_written_by_hand() -> None:
    for name in ("settings.md", "http.md", "cli.md", "metrics.md"):
        assert not (ROOT / "docs" / "reference" / name).exists(), name
