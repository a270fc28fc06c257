"""The async data layer: engine, sessions, and the per-request session dependency.

The engine is built in the lifespan (never at import time) and reached through `DbSession`.
A request gets exactly one session; it commits when the endpoint returns normally and rolls
back on any error, so a failed request leaves no partial rows behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from keel.core.config import Settings
from keel.core.state import from_state

SQLITE_IMMEDIATE = "keel_sqlite_begin_immediate"


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def build_engine(settings: Settings) -> AsyncEngine:
    """An engine tuned for the configured backend; SQLite gets WAL, FKs and a busy timeout."""
    url = make_url(settings.database_url)
    options: dict[str, Any] = {"echo": settings.db_echo}
    if url.get_backend_name() == "sqlite":
        path = _sqlite_file(url)
        if path is None:
            options["poolclass"] = StaticPool
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            options["pool_size"] = settings.db_pool_size
            options["max_overflow"] = settings.db_max_overflow
            options["pool_timeout"] = settings.db_pool_timeout_seconds
        options["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
        engine = create_async_engine(url, **options)
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms, wal=path is not None)
        return engine

    options |= {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        "pool_recycle": settings.db_pool_recycle_seconds,
        "pool_pre_ping": settings.db_pool_pre_ping,
    }
    if url.get_backend_name() == "postgresql":
        options["connect_args"] = {
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": {"application_name": settings.app_name.lower()},
        }
    return create_async_engine(url, **options)


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int, *, wal: bool) -> None:
    """Pragmas per connection, and SQLAlchemy's recipe for real transactions on SQLite.

    The sqlite3 driver otherwise opens transactions lazily and breaks SAVEPOINT; taking over
    BEGIN makes nested transactions (and the test suite's savepoint isolation) behave as they
    do on PostgreSQL.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Sessions may write, so they take the write lock up front (BEGIN IMMEDIATE): a
        # deferred transaction that reads and then writes fails at once with "database is
        # locked" when another writer got there first, instead of waiting its busy timeout.
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """Owns the engine and the session factory for one application instance."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        session_engine = engine
        if engine.dialect.name == "sqlite":
            session_engine = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        self.sessionmaker = async_sessionmaker(session_engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(build_engine(settings))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self, within_seconds: float) -> None:
        """Raise unless the database answers `SELECT 1` in time (readiness probe)."""
        async with asyncio.timeout(within_seconds), self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


get_database = from_state("database", Database)


@asynccontextmanager
async def committing(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Commit when the block succeeds, roll back on any error (including cancellation)."""
    try:
        yield session
    except BaseException:
        await session.rollback()
        raise
    await session.commit()


async def get_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[AsyncSession]:
    """One session per request: commit on success, roll back on any error."""
    async with database.sessionmaker() as session, committing(session):
        yield session


# scope="function" closes the session right after the endpoint returns and before the
# response is sent, so a failing commit becomes an error response instead of a lost write.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
