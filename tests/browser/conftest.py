"""Browser tests: Debian's Chromium (one per session) through Playwright, a real ``authgate
serve`` per module, the example SPA's production build on a static server, mail read from the
SMTP sink. A failing test leaves screenshots of its pages and the server's log in a temporary
directory, named in the failure report."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, AuthgateProcess, SpaServer, build_spa
from tests.support.mail import SmtpSink


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="authgate-browser-"))


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: make system-deps installs Debian's chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def spa() -> Iterator[SpaServer]:
    server = SpaServer(build_spa())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def authgate(
    spa: SpaServer, smtp_sink: SmtpSink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthgateProcess]:
    server = AuthgateProcess(tmp_path_factory.mktemp("authgate"), smtp_sink.port, spa.origin)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def spa_config(spa: SpaServer, authgate: AuthgateProcess) -> Iterator[SpaServer]:
    """The SPA pointed at this module's server, in cookie mode, test hooks on."""
    spa.config = {"apiBaseUrl": authgate.url, "transport": "cookie", "testHooks": True}
    yield spa
    spa.config = {}


@pytest.fixture
async def context(
    browser: Browser,
    spa_config: SpaServer,
    request: pytest.FixtureRequest,
    artifacts_dir: Path,
    authgate: AuthgateProcess,
) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(base_url=spa_config.origin)
    ctx.set_default_timeout(10_000)
    yield ctx
    if request.node.stash.get(_FAILED, False):
        saved = []
        for index, page in enumerate(ctx.pages):
            path = artifacts_dir / f"{request.node.name}-{index}.png"
            await page.screenshot(path=path, full_page=True)
            saved.append(str(path))
        print(f"\nscreenshots: {saved}\nserver log: {authgate.log}")  # noqa: T201
    await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()
