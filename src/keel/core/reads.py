"""Constant reads on the hot path, run on the driver: `PreparedSelect` and `Reads`.

Every authenticated request looks its caller up with the same one SELECT. Through an
`AsyncSession` that lookup cost three times the statement itself (issue 12: ~340 µs of CPU
against ~120): the session's transaction object, the connection's execution context, the
result's row machinery and a greenlet hand-off for each step. A `PreparedSelect` is a Core
statement compiled once per dialect, with SQLAlchemy's own bind and result processors looked
up once; `Reads.all` checks a connection out of the engine's pool (the same fair pool, limits
and metrics as every session), runs the compiled SQL on the asyncpg connection itself
(asyncpg prepares it once per connection and keeps it), and gives the connection back at
once.

Only a safe, constant SELECT belongs here: no transaction is open (autocommit, as a safe
request's session), and the connection is returned before the endpoint runs. Where the fast
path does not apply (SQLite, or an engine whose statements are traced, so that each keeps
its span), the same `PreparedSelect` runs through SQLAlchemy Core on a pooled connection, with
the same rows as the answer.

Tests bind `ConnectionReads` to the test's own connection, so a read sees the test's
uncommitted rows exactly as the request's session does.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends
from sqlalchemy import Select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.util import greenlet_spawn
from starlette.requests import HTTPConnection

_Processor = Callable[[Any], Any] | None

# Set by core/tracing.py on a sync engine whose statements get spans: such an engine's reads
# stay on SQLAlchemy's execution path, where the spans are made.
TRACED_ENGINE_ATTRIBUTE = "_keel_tracing_instrumented"


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the bound parameters, in the order the SQL numbers them
    constants: dict[str, Any]  # the values of those the statement holds (`literal(...)`)
    binds: tuple[_Processor, ...]
    results: tuple[_Processor, ...]


class PreparedSelect:
    """A constant Core SELECT and what running it on a driver needs, compiled once.

    Its rows are named tuples of the selected columns' keys (`row.email`, `row._asdict()`),
    as a Core row reads. Parameters are the statement's `bindparam`s, passed by name. Another
    read-only statement with no selected columns of its own (an `EXPLAIN`) names its `keys`;
    its values come back as the driver gives them."""

    def __init__(self, statement: Select[Any] | Executable, *, keys: Sequence[str] = ()) -> None:
        self.statement = statement
        self._columns = tuple(getattr(statement, "selected_columns", ()))
        self.keys = tuple(keys) or tuple(str(column.key) for column in self._columns)
        self.row: type[tuple[Any, ...]] = namedtuple("Row", self.keys)  # type: ignore[misc]
        self._compiled: dict[str, _Compiled] = {}

    def rows_of(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """Core's rows as this statement's named rows, whichever path read them."""
        make = self.row._make  # type: ignore[attr-defined]
        return [make(row) for row in rows]

    def compiled_for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = self._compile(dialect)
        return compiled

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = cast(SQLCompiler, cast(ClauseElement, self.statement).compile(dialect=dialect))
        names = tuple(compiled.positiontup or ())
        return _Compiled(
            sql=compiled.string,
            names=names,
            constants={
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if not bind.required
            },
            binds=tuple(
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            ),
            results=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in self._columns
            )
            or (None,) * len(self.keys),
        )


def _arguments(compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
    return [
        value if process is None else process(value)
        for value, process in zip(
            (
                params[name] if name in params else compiled.constants[name]
                for name in compiled.names
            ),
            compiled.binds,
            strict=True,
        )
    ]


def _processed(
    query: PreparedSelect, compiled: _Compiled, records: Sequence[Sequence[Any]]
) -> list[Any]:
    if not any(compiled.results):
        return query.rows_of(records)
    make = query.row._make  # type: ignore[attr-defined]
    return [
        make(
            value if process is None or value is None else process(value)
            for value, process in zip(record, compiled.results, strict=True)
        )
        for record in records
    ]


def _driver_error(sql: str, error: Exception, *, connection_lost: bool) -> sa_exc.DBAPIError:
    """The driver's failure as SQLAlchemy's, which the error handlers already know: an error
    the server sent (a cancelled statement's sqlstate included) as `DatabaseError`, anything
    else (a timeout, a lost connection) as a connection failure (503)."""
    if connection_lost:
        return sa_exc.OperationalError(
            sql, None, error, hide_parameters=True, connection_invalidated=True
        )
    return sa_exc.DatabaseError(sql, None, error, hide_parameters=True)


class Reads:
    """Runs reads on pooled connections of `engine`, each given back when it is done: a
    `PreparedSelect` on the driver (see the module's docstring), any other statement through
    Core."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._driver_postgres_error: type[Exception] | None = None
        if engine.dialect.driver == "asyncpg":
            import asyncpg  # type: ignore[import-untyped]

            self._driver_postgres_error = asyncpg.PostgresError

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def execute(self, statement: Executable, params: Mapping[str, Any]) -> list[Any]:
        """Every row of a statement built for this request, through Core (its compiled form
        comes from SQLAlchemy's cache)."""
        async with self.engine.connect() as connection:
            return list((await connection.execute(statement, dict(params))).all())

    def _on_driver(self) -> bool:
        """Whether a `PreparedSelect` runs on the driver (asyncpg, and no SQL spans wanted)."""
        return self._driver_postgres_error is not None and not getattr(
            self.engine.sync_engine, TRACED_ENGINE_ATTRIBUTE, False
        )

    async def _fetch(self, pooled: Any, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        """The driver's `fetch` on a pooled connection, its failures as SQLAlchemy's."""
        assert self._driver_postgres_error is not None
        try:
            return await pooled.driver_connection.fetch(compiled.sql, *_arguments(compiled, params))
        except Exception as error:
            connection_lost = not isinstance(error, self._driver_postgres_error)
            if connection_lost:
                # Mid-conversation (timed out) or gone: the pool opens a fresh one.
                pooled.invalidate(error)
            raise _driver_error(compiled.sql, error, connection_lost=connection_lost) from error

    async def all(self, query: PreparedSelect, **params: Any) -> list[Any]:
        """Every row of `query` with `params`."""
        if not self._on_driver():
            return query.rows_of(await self.execute(query.statement, params))
        compiled = query.compiled_for(self.engine.dialect)
        pooled = await self.engine.raw_connection()
        try:
            records = await self._fetch(pooled, compiled, params)
        finally:
            await greenlet_spawn(pooled.close)
        return _processed(query, compiled, records)


class ConnectionReads(Reads):
    """`Reads` on one connection the caller already holds: a test's, inside its transaction,
    or the request session's (`await session.connection()`) for an endpoint whose caller was
    loaded through the session, so that the request never holds two connections at once."""

    def __init__(self, connection: AsyncConnection) -> None:
        super().__init__(connection.engine)
        self.connection = connection

    async def execute(self, statement: Executable, params: Mapping[str, Any]) -> list[Any]:
        return list((await self.connection.execute(statement, dict(params))).all())

    async def all(self, query: PreparedSelect, **params: Any) -> list[Any]:
        if not self._on_driver():
            return query.rows_of(await self.execute(query.statement, params))
        compiled = query.compiled_for(self.engine.dialect)
        pooled = await self.connection.get_raw_connection()
        return _processed(query, compiled, await self._fetch(pooled, compiled, params))


async def get_reads(connection: HTTPConnection) -> Reads:
    """The app's `Reads` (read from the database in the lifespan state)."""
    reads: Reads = connection.state.database.reads
    return reads


DbReads = Annotated[Reads, Depends(get_reads)]
