"""Shared fixtures: the app is built by the real factory, with test settings, lifespan running.

Isolation: every test's requests share one database connection inside an outer transaction
that is rolled back afterwards; the app's `get_session` is overridden to open a SAVEPOINT on
it, so services may commit freely and still leave nothing behind. The same mechanism runs on
SQLite (default) and PostgreSQL (`KEEL_TEST_DATABASE_URL`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.core.config import get_settings
from keel.core.database import Database
from keel.main import create_app
from keel.settings import Settings, load_settings
from tests.support import routes
from tests.support.accounts import Account, make_admin, signed_up
from tests.support.app import isolate_sessions, serve
from tests.support.databases import (
    create_probe_table,
    empty_all_tables,
    fresh_database_url,
    migrate,
    provision_database,
)
from tests.support.otlp import Collector, running_collector

# The leak scan checks every log line of the session against every secret it created;
# pytester lets its own test run an inner session with a planted leak; the cluster's
# fixtures serve core's cluster tests and the features'.
pytest_plugins = ["tests.support.leak_scan", "pytester", "tests.support.cluster"]

TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
MakeSettings = Callable[..., Settings]


LONGEST_MODULES = ("test_contract.py", "test_typescript_client.py", "test_new_feature_e2e.py")
"""Minutes each on one worker (a fuzzer run per role; npm, a client build and a live server;
three generated features and a project's checks on them):
collected first, so xdist's loadscope hands them out first and the short modules fill in
around them, instead of both starting last and leaving a long tail."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in LONGEST_MODULES)  # stable: order kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """In CI a skipped test is a failure: the suite must run everything against real servers."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No KEEL_* variable from the developer's shell leaks into a test; no cached settings."""
    for name in list(os.environ):
        if name.startswith("KEEL_") and not name.startswith("KEEL_TEST_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database for this test worker, shared by every isolated test."""
    url = fresh_database_url("app", tmp_path_factory.mktemp("db"))
    asyncio.run(migrate(url))
    asyncio.run(create_probe_table(url))
    return url


@pytest.fixture(scope="session")
def live_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A second migrated database, for tests that must commit through the app's real pool."""
    url = fresh_database_url("live", tmp_path_factory.mktemp("live"))
    asyncio.run(migrate(url))
    return url


@pytest.fixture
async def live_settings(
    make_settings: MakeSettings, live_database_url: str
) -> AsyncIterator[Settings]:
    """Settings for an app on its own engine and pool (real commits, real concurrency);
    every table is emptied afterwards."""
    yield make_settings(database_url=live_database_url)
    await empty_all_tables(live_database_url)


@pytest.fixture
def make_settings(database_url: str) -> MakeSettings:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "auto_migrate": False,
            "jwt_secret": TEST_JWT_SECRET,
            # Cheap Argon2 and generous limits keep unrelated tests fast and independent;
            # the tests about hashing and limits set their own.
            "password_hash_time_cost": 1,
            "password_hash_memory_kib": 1024,
            "rate_limit_default": "100000/minute",
            "rate_limit_login_ip": "100000/minute",
            "rate_limit_login_account": "100000/minute",
            "rate_limit_register_ip": "100000/minute",
            "rate_limit_refresh_ip": "100000/minute",
            "rate_limit_password_reset_ip": "100000/minute",
            "rate_limit_password_reset_account": "100000/minute",
            "rate_limit_account_token_ip": "100000/minute",
            "rate_limit_verify_resend_account": "100000/minute",
            "storage_url": "memory://",
            "_env_file": None,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings()


@pytest.fixture
async def db_connection(settings: Settings) -> AsyncIterator[AsyncConnection]:
    database = Database.from_settings(settings)
    try:
        async with database.engine.connect() as connection:
            transaction = await connection.begin()
            yield connection
            if transaction.is_active:
                await transaction.rollback()
    finally:
        await database.dispose()


@pytest.fixture
def app(settings: Settings, db_connection: AsyncConnection) -> FastAPI:
    """The app as the factory builds it, plus test-only routes, with isolated sessions."""
    application = create_app(settings)
    application.include_router(routes.router)
    isolate_sessions(application, db_connection)
    return application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app) as http:
        yield http


FreshDatabase = Callable[[str], Awaitable[str]]


@pytest.fixture
def fresh_database(tmp_path: Path) -> FreshDatabase:
    """An empty, unmigrated database (per label and worker) for migration tests."""
    return lambda label: provision_database(label, tmp_path)


@pytest.fixture
async def admin(client: httpx.AsyncClient, db_connection: AsyncConnection) -> Account:
    """A signed-up account with the admin role, logged in."""
    account = await signed_up(client)
    await make_admin(db_connection, account)
    return account


@pytest.fixture
def fast_jobs_settings(live_settings: Settings) -> Settings:
    """A real database, and retries and the sweeper quick enough for tests of jobs."""
    from tests.support.jobs import FAST_JOBS

    return live_settings.model_copy(update=FAST_JOBS)


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A live OTLP/HTTP receiver on loopback, for the tracing tests of core and the features."""
    with running_collector() as running:
        yield running
