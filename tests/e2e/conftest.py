"""Browser tests: the real app on a real threaded HTTP server, driven by Debian's Chromium.

They skip with a visible reason when Playwright or /usr/bin/chromium is missing, unless
``WALLET_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which turns the skip into a failure.
Playwright's own browser downloads are never used.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.services.clock import Clock

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REQUIRE_BROWSER = os.environ.get("WALLET_REQUIRE_BROWSER") == "1"


def _browser_unavailable_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session."""
    reason = _browser_unavailable_reason()
    if reason:
        if REQUIRE_BROWSER:
            pytest.fail(f"browser tests are required (WALLET_REQUIRE_BROWSER=1): {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser):
    """A fresh browser profile (no cookies) per test."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def clock() -> Clock:
    """The real clock: the browser, the sandbox and the server share real time."""
    return Clock()


@dataclass
class LiveServer:
    url: str
    app: object

    @property
    def wallet(self):
        return self.app.extensions["wallet"]


@pytest.fixture
def serve(make_app):
    """Serve an app on a database URL over real HTTP on a free 127.0.0.1 port; return it."""
    from werkzeug.serving import make_server

    servers = []

    def _serve(database_url: str) -> LiveServer:
        # Bind first to learn the port, then build the app with PUBLIC_BASE_URL pointing at it.
        server = make_server("127.0.0.1", 0, lambda environ, start_response: [], threaded=True)
        url = f"http://127.0.0.1:{server.server_port}"
        server.app = make_app(database_url, PUBLIC_BASE_URL=url)
        thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
        thread.start()
        servers.append((server, thread))
        return LiveServer(url, server.app)

    yield _serve
    for server, thread in servers:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Where screenshots go: WALLET_E2E_SCREENSHOTS if set, else the test's temp dir."""
    folder = Path(os.environ.get("WALLET_E2E_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
