"""Fixtures for browser tests: Keel served for real on loopback, and Debian's headless Chromium.

A browser cannot talk to an in-process ASGI transport, so the app is served by uvicorn on a
free 127.0.0.1 port, in a background thread of the test process (so coverage sees the code it
runs and nothing outlives the test session). Chromium is Debian's package, not Playwright's
download: the build machines reach package registries only, and `playwright install` would need
Google's CDN.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from keel.main import create_app
from keel.settings import load_settings
from tests.support.servers import uvicorn_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium phones home (updates, sync, field trials) at start-up; on a closed
    # network that is noise at best, and it is traffic the tests promise not to make.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Loopback only: no proxy from the environment, and no other host even resolves, so nothing
    # (the page or the browser itself) can reach beyond this machine.
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
E2E_JWT_SECRET = "e2e-secret-that-is-long-enough-for-hs256-0123456789abcdef"
STARTUP_SECONDS = 30
SHUTDOWN_SECONDS = 15


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Keel, built by its real factory and migrated on start-up, serving on 127.0.0.1.

    Module-scoped: starting the server and migrating a fresh database costs more than the
    tests that share it. Its database is its own file, so parallel workers never meet.
    """
    tmp_path = tmp_path_factory.mktemp("e2e")
    settings = load_settings(
        _env_file=None,
        environment="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}",
        storage_url=f"file://{tmp_path / 'files'}",
        auto_migrate=True,
        jwt_secret=E2E_JWT_SECRET,
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
        log_level="WARNING",
    )
    with uvicorn_server(create_app(settings), name="keel-e2e-server", lifespan="on") as base:
        # `started` means the socket listens; /health proves requests get through the app.
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200
        yield base


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless. Missing Chromium fails (CI counts a skip as a failure)."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's Chromium. Install it with\n"
            "    sudo apt-get update && sudo apt-get install -y chromium\n"
            "(do not run `playwright install`: it downloads a different build from the internet)",
            pytrace=False,
        )
    chromium = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield chromium
    finally:
        chromium.close()
