"""The async data layer: engine, sessions, and the per-request session dependency.

The engine is built in the lifespan (never at import time) and reached through `DbSession`.
A request gets exactly one session; it commits when the endpoint returns normally and rolls
back on any error, so a failed request leaves no partial rows behind.

Services never call `commit()` or `rollback()` themselves. The two reasons to end a
transaction early each have one named way: `keep_changes` (commit, then fail: the change
must survive the error that follows) and `commit_now` (publish a claim before a slow call).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends
from sqlalchemy import TextClause, event, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.pool import StaticPool
from starlette.requests import HTTPConnection

from keel.core.config import CoreSettings
from keel.core.logging import get_logger
from keel.core.pool import FairQueuePool
from keel.core.reads import ConnectionReads, Reads
from keel.core.state import from_state

log = get_logger(__name__)

SQLITE_IMMEDIATE = "keel_sqlite_begin_immediate"
AUTOCOMMIT = "AUTOCOMMIT"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def build_engine(settings: CoreSettings, *, bounded: bool = True) -> AsyncEngine:
    """An engine tuned for the configured backend; SQLite gets WAL, FKs and a busy timeout.

    `bounded=False` leaves out the statement timeouts, for migrations: building an index on a
    large table may rightly take longer than any request should."""
    url = make_url(settings.database_url)
    # hide_parameters: a failed statement's exception text (logged, traced) names the SQL but
    # never the bound values (password hashes, tokens' digests, personal data).
    options: dict[str, Any] = {"echo": settings.db_echo, "hide_parameters": True}
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
        # First come, first served: SQLAlchemy's own async queue lets a newcomer take a
        # connection released for an older waiter (core/pool.py).
        "poolclass": FairQueuePool,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        "pool_recycle": settings.db_pool_recycle_seconds,
        "pool_pre_ping": settings.db_pool_pre_ping,
    }
    if url.get_backend_name() == "postgresql":
        statement_seconds = settings.db_statement_timeout_seconds
        server_settings = {"application_name": settings.app_name.lower()}
        options["connect_args"] = {
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": server_settings,
        }
        if bounded:
            # The server cancels a slow statement itself and the connection stays usable;
            # the client's own bound, a little later, is for a server that answers nothing.
            options["connect_args"]["command_timeout"] = (
                statement_seconds + CLIENT_TIMEOUT_MARGIN_SECONDS
            )
            server_settings["statement_timeout"] = str(max(1, round(statement_seconds * 1000)))
    engine = create_async_engine(url, **options)
    event.listen(engine.sync_engine, "handle_error", _discard_timed_out_connection)
    return engine


CLIENT_TIMEOUT_MARGIN_SECONDS = 0.5


def _discard_timed_out_connection(context: ExceptionContext) -> None:
    """A statement the client gave up on leaves its connection mid-conversation (an answer
    may still arrive, or never): treat it as broken, so the pool replaces it, instead of
    handing it to the next request. Only this connection: one slow answer says nothing about
    the others."""
    if isinstance(context.original_exception, TimeoutError):
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False


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
        options = connection.get_execution_options()
        if options.get("isolation_level") == AUTOCOMMIT:
            return  # read-only request sessions: every statement stands alone
        immediate = options.get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class ReadOnlyRequestError(RuntimeError):
    """A safe (GET/HEAD/OPTIONS) request tried to write: a bug, answered as a generic 500."""


class ReadOnlySession(Session):
    """The session of a safe request: statements run in autocommit, and writing is refused.

    Safe HTTP methods never change state, so their session needs no transaction: that saves a
    BEGIN and a COMMIT round trip on every read (at READ COMMITTED each statement sees the latest
    committed data either way). A write through it would commit statement by statement with no
    rollback, so any attempt raises instead.
    """


def _has_pending(session: Session) -> bool:
    """Whether the session holds changes a flush would write."""
    return bool(session.new or session.dirty or session.deleted)


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, *_: Any) -> None:
    if _has_pending(session):
        raise ReadOnlyRequestError("a GET/HEAD/OPTIONS request must not write to the database")


READ_KEYWORDS = ("SELECT", "WITH", "VALUES", "SHOW", "EXPLAIN", "PRAGMA")


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    statement = state.statement
    writes = state.is_insert or state.is_update or state.is_delete
    if isinstance(statement, TextClause):
        writes = not statement.text.lstrip().upper().startswith(READ_KEYWORDS)
    if writes:
        raise ReadOnlyRequestError("a GET/HEAD/OPTIONS request must not write to the database")


async def release_connection(session: AsyncSession) -> None:
    """Give a read-only request's connection back to the pool now, not when the request ends.

    For a request that has read all it needs (a list page, before its rows are serialised):
    under load the connection serves the next waiter while this one still writes JSON. Only
    a `ReadOnlySession` with nothing pending is released: it has no transaction to lose
    (autocommit), and its loaded objects stay in the session, unexpired. A later read in the
    same request checks a connection out again. Any other session keeps its connection: its
    transaction is the request's.
    """
    sync_session = session.sync_session
    if not isinstance(sync_session, ReadOnlySession) or _has_pending(sync_session):
        return
    transaction = sync_session.get_transaction()
    if transaction is not None:
        # Closing the transaction (unlike `close()`) returns its connection and keeps the
        # identity map; the checkin's reset awaits the driver, hence `run_sync`.
        await session.run_sync(lambda _: transaction.close())


@asynccontextmanager
async def reads_on(session: AsyncSession) -> AsyncIterator[ConnectionReads]:
    """`Reads` on the session's own connection, for a request whose caller was loaded through
    the session (`CurrentUser`): its page is read on the connection it already holds, never a
    second one (a request holding one and waiting for another could starve the pool), and a
    read-only request gives it back afterwards (`release_connection`)."""
    yield ConnectionReads(await session.connection())
    await release_connection(session)


class Database:
    """Owns the engine and the session factories for one application instance."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        session_engine = engine
        if engine.dialect.name == "sqlite":
            session_engine = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        self.sessionmaker = async_sessionmaker(session_engine, expire_on_commit=False)
        self.read_sessionmaker = async_sessionmaker(
            engine.execution_options(isolation_level=AUTOCOMMIT),
            expire_on_commit=False,
            sync_session_class=ReadOnlySession,
        )
        self.reads = Reads(engine)

    @classmethod
    def from_settings(cls, settings: CoreSettings, *, bounded: bool = True) -> Database:
        return cls(build_engine(settings, bounded=bounded))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self, within_seconds: float) -> None:
        """Raise unless the database answers `SELECT 1` in time (readiness probe)."""
        async with asyncio.timeout(within_seconds), self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the block succeeds (see `committing`):
        for work outside a request, such as jobs and commands."""
        async with self.sessionmaker() as session, committing(session):
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


get_database = from_state("database", Database)


AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "keel_after_commit"
_AFTER_ROLLBACK = "keel_after_rollback"
_KEEP_ON = "keel_keep_changes_on"

E = TypeVar("E", bound=BaseException)


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the session's transaction has committed; never if it rolls back.

    For side effects that must not announce a change that did not happen: cache
    invalidation, events.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def after_rollback(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` if the session's transaction rolls back (or its commit fails).

    For undoing what lives outside the database: an object written to storage for a row
    that was never committed.
    """
    session.info.setdefault(_AFTER_ROLLBACK, []).append(callback)


def keep_changes(session: AsyncSession, error: E) -> E:
    """Commit, then fail: when `error` ends this session's transaction, it commits instead of
    rolling back, and the error is answered as usual. `raise keep_changes(session, error)`.

    For a change that is itself the point of the failure: a revoked token family before its
    401, a refund record before its 409, a released claim before its 402. The mark belongs
    to this one error object, set as it is raised, so nothing written after it and no other
    error commits by accident; an error raised in its place (wrapped, or a failure while
    handling it) rolls back as any error does. Any exception may carry it, not only an
    `AppError`: the idempotency layer re-raises unexpected ones after releasing its key.
    """
    session.info[_KEEP_ON] = error
    return error


def keeps_changes(session: AsyncSession, error: BaseException) -> bool:
    """Whether `error` was raised through `keep_changes` on this session."""
    return session.info.get(_KEEP_ON) is error


async def commit_now(session: AsyncSession) -> None:
    """Publish: commit what the transaction holds so far, before the request goes on.

    Not for surviving an error (that is `keep_changes`), but for a change other requests
    must see *now*, while this one still works: a claim taken before a slow external call
    (a payment, an idempotency key), so a concurrent request meets it instead of repeating
    the work. The request continues in a new transaction; callbacks registered so far run as
    for any commit.
    """
    await _commit(session)


async def discard_changes(session: AsyncSession) -> None:
    """Roll back what the request changed so far and continue in a new transaction.

    For recording an outcome without the work that failed (the idempotency layer stores an
    error's answer, or releases its key, then raises through `keep_changes`). The
    discarded work's callbacks run as for any rollback.
    """
    await _rollback(session)


async def _run_callbacks(callbacks: list[AfterCommit]) -> None:
    for callback in callbacks:
        try:
            await callback()
        except Exception:  # the outcome is decided; a failed follow-up must not change the answer
            log.exception("transaction_callback_failed")


async def _commit(session: AsyncSession) -> None:
    """Commit; on success the after-commit callbacks run, if the commit fails it rolls back."""
    try:
        await session.commit()
    except BaseException:
        await _rollback(session)
        raise
    session.info.pop(_AFTER_ROLLBACK, None)
    await _run_callbacks(session.info.pop(_AFTER_COMMIT, []))


async def _rollback(session: AsyncSession) -> None:
    session.info.pop(_AFTER_COMMIT, None)
    await session.rollback()
    await _run_callbacks(session.info.pop(_AFTER_ROLLBACK, []))


@asynccontextmanager
async def committing(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Commit when the block succeeds, roll back on any error (including cancellation),
    except an error raised through `keep_changes`: that one commits, then propagates."""
    try:
        yield session
    except BaseException as error:
        keep = keeps_changes(session, error)
        session.info.pop(_KEEP_ON, None)
        if keep:
            await _commit(session)
        else:
            await _rollback(session)
        raise
    session.info.pop(_KEEP_ON, None)
    await _commit(session)


async def get_session(connection: HTTPConnection) -> AsyncIterator[AsyncSession]:
    """One session per request: commit on success, roll back on any error.

    Safe methods (GET, HEAD, OPTIONS) get a read-only session with no transaction at all.
    The database is read from the lifespan state here, not through `get_database`: this runs
    on nearly every request, and each dependency layer FastAPI resolves has a cost.
    """
    database: Database = connection.state.database
    if connection.scope.get("method") in SAFE_METHODS:
        async with database.read_sessionmaker() as session:
            yield session
        return
    async with database.transaction() as session:
        yield session


# scope="function" closes the session right after the endpoint returns and before the
# response is sent, so a failing commit becomes an error response instead of a lost write.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
