"""Fixtures for tests that drive a real Chromium with Playwright (sync API).

Chromium comes from the system (``/usr/bin/chromium``, or the path in
``WSMANAGER_CHROMIUM``). When it or Playwright is missing the tests skip with
a one-line reason, unless ``WSMANAGER_REQUIRE_BROWSER=1``: then they fail, so
that CI cannot pass by skipping them. The browser lives for one test module,
so that its event loop never overlaps with pytest-asyncio's loops elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.servers import DaphneProcess

from .fake_server import FakeServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = os.environ.get("WSMANAGER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parents[2]
CLIENT_JS = ROOT / "wsmanager" / "static" / "wsmanager" / "wsmanager.js"

# Upper bound of every wait on the page; generous so a loaded machine passes,
# while a broken behaviour still fails in seconds rather than at pytest's timeout.
WAIT_MS = 10_000


def browser_problem() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (install it or set WSMANAGER_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, launched once per test module; skips (or fails) when unavailable."""
    problem = browser_problem()
    if problem is not None:
        if os.environ.get("WSMANAGER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{problem} (WSMANAGER_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """A factory of pages, each in its own browser context (own cookies, own sockets)."""
    contexts: list[BrowserContext] = []

    def make() -> Page:
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda exc: print(f"[page error] {exc}"))
        page.on("console", lambda msg: print(f"[console.{msg.type}] {msg.text}"))
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def demo_server() -> Iterator[DaphneProcess]:
    """One daphne serving the demo, shared by a module's tests (each uses its own rooms)."""
    server = DaphneProcess().start()
    yield server
    server.stop()


@pytest.fixture
def daphne() -> Iterator[Callable[..., DaphneProcess]]:
    """Start daphne processes this test may kill, freeze or restart; all stopped at the end."""
    started: list[DaphneProcess] = []

    def start(port: int | None = None, env: dict[str, str] | None = None) -> DaphneProcess:
        server = DaphneProcess(port=port, env=env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """A scripted WebSocket peer (see fake_server.py) for protocol corners the demo cannot produce."""
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def blank_page(new_page: Callable[[], Page]) -> Page:
    """A page with nothing but the client library loaded as a classic script."""
    page = new_page()
    page.set_content("<!doctype html><title>client</title>")
    page.add_script_tag(path=str(CLIENT_JS))
    return page
