"""`Reads`: a constant SELECT run on the driver gives SQLAlchemy's rows, keeps the pool whole,
and fails as SQLAlchemy would (503 for a slow or silent database, never a lost connection)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import (
    BigInteger,
    String,
    TypeDecorator,
    bindparam,
    column,
    func,
    literal,
    select,
    table,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.core.database import build_engine
from keel.core.exception_handlers import is_backend_unavailable
from keel.core.reads import TRACED_ENGINE_ATTRIBUTE, ConnectionReads, PreparedSelect, Reads
from keel.settings import Settings
from tests.conftest import MakeSettings
from tests.support.databases import POSTGRES_URL
from tests.support.tcp_proxy import TcpProxy

postgres_only = pytest.mark.skipif(not POSTGRES_URL, reason="needs KEEL_TEST_DATABASE_URL")


class Shouted(TypeDecorator[str]):
    """Bound in lower case, read back in upper case: shows both processors ran."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else value.lower()

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else value.upper() + "!"


ECHO = PreparedSelect(
    select(
        bindparam("word", type_=Shouted()).label("word"),
        (bindparam("number", type_=BigInteger()) + literal(0, BigInteger())).label("number"),
        func.length(bindparam("word", type_=Shouted())).label("length"),
    )
)
SLEEP = PreparedSelect(select(func.pg_sleep(bindparam("seconds")).label("slept")))
NOTHING = PreparedSelect(select(literal(1).label("one")).where(bindparam("never") == literal(True)))


@pytest.fixture
async def engine(make_settings: MakeSettings) -> AsyncIterator[AsyncEngine]:
    engine = build_engine(make_settings(db_pool_size=1, db_max_overflow=0))
    yield engine
    await engine.dispose()


async def test_the_driver_path_gives_the_rows_sqlalchemy_gives(engine: AsyncEngine) -> None:
    reads = Reads(engine)
    fast = await reads.all(ECHO, word="MiXeD", number=2**63 - 1)
    setattr(engine.sync_engine, TRACED_ENGINE_ATTRIBUTE, True)  # as tracing does: Core's path
    through_core = await reads.all(ECHO, word="MiXeD", number=2**63 - 1)
    assert fast == through_core == [("MIXED!", 2**63 - 1, 5)]
    assert ECHO.keys == ("word", "number", "length")


async def test_no_rows_is_an_empty_list(engine: AsyncEngine) -> None:
    assert await Reads(engine).all(NOTHING, never=False) == []


async def test_a_missing_parameter_is_refused_and_holds_no_connection(
    engine: AsyncEngine,
) -> None:
    with pytest.raises((KeyError, sa_exc.StatementError)):  # the driver's path, Core's
        await Reads(engine).all(ECHO, word="only one of two")
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_the_connection_goes_back_after_each_read(engine: AsyncEngine) -> None:
    reads = Reads(engine)
    # One pooled connection: were one kept, the second read would wait out the pool timeout.
    for number in range(3):
        assert (await reads.all(ECHO, word="a", number=number))[0][1] == number
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@postgres_only
async def test_a_value_the_server_refuses_is_a_database_error_not_a_lost_connection(
    engine: AsyncEngine,
) -> None:
    reads = Reads(engine)
    with pytest.raises(sa_exc.DatabaseError) as caught:
        await reads.all(ECHO, word="nul\x00byte", number=1)
    assert not is_backend_unavailable(caught.value)  # a bug to fix (500), not an outage
    assert "nul\x00byte" not in str(caught.value), "bound values stay out of the error text"
    assert (await reads.all(ECHO, word="after", number=1))[0][0] == "AFTER!"


@postgres_only
async def test_an_integer_beyond_bigint_is_refused_by_the_driver_and_the_pool_recovers(
    engine: AsyncEngine,
) -> None:
    reads = Reads(engine)
    with pytest.raises(sa_exc.DatabaseError) as caught:
        await reads.all(ECHO, word="big", number=2**63)
    assert not caught.value.connection_invalidated
    assert not is_backend_unavailable(caught.value)
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert (await reads.all(ECHO, word="ok", number=-(2**63)))[0][1] == -(2**63)


@postgres_only
async def test_a_statement_over_the_server_timeout_is_503_and_keeps_the_connection(
    make_settings: MakeSettings,
) -> None:
    engine = build_engine(make_settings(db_pool_size=1, db_statement_timeout_seconds=0.2))
    reads = Reads(engine)
    try:
        with pytest.raises(sa_exc.DatabaseError) as caught:
            await reads.all(SLEEP, seconds=5)
        assert is_backend_unavailable(caught.value)
        assert not caught.value.connection_invalidated
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert await reads.all(ECHO, word="x", number=0) == [("X!", 0, 1)]
    finally:
        await engine.dispose()


@postgres_only
async def test_a_silent_database_is_503_and_its_connection_is_replaced(
    make_settings: MakeSettings, live_settings: Settings
) -> None:
    target = make_url(live_settings.database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    via_proxy = target.set(port=proxy.port).render_as_string(hide_password=False)
    engine = build_engine(
        make_settings(database_url=via_proxy, db_pool_size=1, db_statement_timeout_seconds=0.3)
    )
    reads = Reads(engine)
    try:
        assert await reads.all(ECHO, word="up", number=1) == [("UP!", 1, 2)]
        proxy.blackhole()
        started = asyncio.get_running_loop().time()
        with pytest.raises(sa_exc.OperationalError) as caught:
            await reads.all(ECHO, word="silence", number=1)
        elapsed = asyncio.get_running_loop().time() - started
        proxy.restore()
        after = await reads.all(ECHO, word="back", number=1)
    finally:
        await proxy.stop()
        await engine.dispose()
    assert is_backend_unavailable(caught.value)
    assert caught.value.connection_invalidated
    assert elapsed < 3, f"the read waited {elapsed:.1f} s"
    assert after == [("BACK!", 1, 4)], "the silenced connection was replaced, not reused"


async def test_an_exhausted_pool_is_the_pools_timeout(make_settings: MakeSettings) -> None:
    engine = build_engine(make_settings(db_pool_size=1, db_pool_timeout_seconds=0.2))
    reads = Reads(engine)
    try:
        async with engine.connect():  # holds the only connection
            with pytest.raises(sa_exc.TimeoutError) as caught:
                await reads.all(ECHO, word="w", number=1)
        assert is_backend_unavailable(caught.value)
        assert await reads.all(ECHO, word="w", number=1) == [("W!", 1, 1)]
    finally:
        await engine.dispose()


async def test_connection_reads_run_on_that_connection_inside_its_transaction(
    engine: AsyncEngine,
) -> None:
    # A temporary table exists on one connection only, and this one holds an uncommitted row.
    numbers = PreparedSelect(select(column("n")).select_from(table("numbers")))
    async with engine.connect() as connection:
        transaction = await connection.begin()
        await connection.execute(text("CREATE TEMPORARY TABLE numbers (n BIGINT)"))
        await connection.execute(text("INSERT INTO numbers (n) VALUES (42)"))
        reads = ConnectionReads(connection)
        assert await reads.all(numbers) == [(42,)]
        assert await reads.all(ECHO, word="inside", number=7) == [("INSIDE!", 7, 6)]
        assert connection.in_transaction()
        await transaction.rollback()


@postgres_only
async def test_connection_reads_fail_as_sqlalchemy_does_and_keep_the_transaction_usable(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        await connection.begin()
        reads = ConnectionReads(connection)
        savepoint = await connection.begin_nested()  # a refusal undoes only its savepoint
        with pytest.raises(sa_exc.DatabaseError) as caught:
            await reads.all(ECHO, word="nul\x00byte", number=1)
        assert not is_backend_unavailable(caught.value)
        assert not caught.value.connection_invalidated
        await savepoint.rollback()
        assert await reads.all(ECHO, word="after", number=1) == [("AFTER!", 1, 5)]


async def test_connection_reads_on_a_traced_engine_go_through_core(engine: AsyncEngine) -> None:
    setattr(engine.sync_engine, TRACED_ENGINE_ATTRIBUTE, True)
    async with engine.connect() as connection:
        rows = await ConnectionReads(connection).all(ECHO, word="Traced", number=3)
    assert rows == [("TRACED!", 3, 6)]
    assert type(rows[0]) is ECHO.row  # read through Core (where spans are made), same rows


async def test_a_statement_without_columns_of_its_own_names_its_keys(engine: AsyncEngine) -> None:
    plus_one = PreparedSelect(
        text("SELECT :n + 1").bindparams(bindparam("n", type_=BigInteger())), keys=("answer",)
    )
    rows = await Reads(engine).all(plus_one, n=41)
    assert [row.answer for row in rows] == [42]
    assert plus_one.keys == ("answer",)
