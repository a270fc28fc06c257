"""Provision throwaway databases for tests: SQLite files, or PostgreSQL databases per worker.

With `KEEL_TEST_DATABASE_URL` set, every xdist worker gets databases of its own named after
the worker, so workers never see each other's rows or schema changes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url

from keel.core.database import Database
from keel.migrations import runner
from keel.settings import load_settings

POSTGRES_URL = os.environ.get("KEEL_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("KEEL_TEST_REDIS_URL")


def backend_name() -> str:
    return "postgresql" if POSTGRES_URL else "sqlite"


async def _recreate_postgres_database(base_url: str, name: str) -> str:
    url = make_url(base_url)
    admin = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        # A commit need not wait for its WAL to reach the disk: a throwaway database does not
        # have to survive a crash of PostgreSQL itself, and what other sessions see of a
        # commit (every test's assertion) is the same. Commits are the suite's main wait.
        await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        await admin.close()
    return url.set(database=name).render_as_string(hide_password=False)


def fresh_database_url(label: str, directory: Path) -> str:
    """Blocking form of `provision_database`, for session fixtures outside an event loop."""
    return asyncio.run(provision_database(label, directory))


async def provision_database(label: str, directory: Path) -> str:
    """An empty database for `label` (per worker), on PostgreSQL if configured, else SQLite."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if POSTGRES_URL:
        base = make_url(POSTGRES_URL)
        name = f"{base.database}_{worker}_{label}"
        return await _recreate_postgres_database(POSTGRES_URL, name)
    return f"sqlite+aiosqlite:///{directory / label}.db"  # directory is a fresh tmp dir


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Database]:
    """A short-lived engine on `url`, disposed afterwards."""
    database = Database.from_settings(load_settings(database_url=url, _env_file=None))
    try:
        yield database
    finally:
        await database.dispose()


async def migrate(url: str, revision: str = "heads") -> None:
    async with opened(url) as database:
        await runner.upgrade(database.engine, revision)


async def create_probe_table(url: str) -> None:
    """A scratch table outside the migrations, for observing commits and rollbacks."""
    async with opened(url) as database, database.engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE IF NOT EXISTS test_probe (label VARCHAR(64) NOT NULL)")
        )


async def empty_all_tables(url: str) -> None:
    """Delete every row the app's tables hold (for tests that commit through the real pool)."""
    from keel.features.registry import metadata

    async with opened(url) as database, database.engine.begin() as connection:
        for table in reversed(metadata().sorted_tables):
            await connection.execute(table.delete())


def implied_left_out(revisions: list[str]) -> list[str]:
    """`runner.not_implied` on the project's own revisions: what a new revision that needs
    `revisions` would name in its `depends_on`."""
    scripts = ScriptDirectory.from_config(runner.alembic_config())
    return runner.not_implied(scripts, revisions)
