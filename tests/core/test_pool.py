"""The fair connection pool (core/pool.py): first come, first served; timeouts, cancellations
and broken connections leave the pool whole.

The queue's own rules are checked on the queue (`greenlet_spawn` gives its blocking `get`
the context the pool gives it); the pool's, on a real engine against the test database
(PostgreSQL with KEEL_TEST_DATABASE_URL, else a SQLite file), and the answers on the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, StaticPool
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty, Full

from keel.core.database import build_engine
from keel.core.pool import FairQueue, FairQueuePool
from keel.settings import load_settings
from tests.conftest import MakeSettings
from tests.core.test_database import unisolated_app
from tests.support.app import serve
from tests.support.assertions import assert_error_body, metric_value
from tests.support.databases import POSTGRES_URL

BOUND_SECONDS = 20
"""No test here may take longer, whatever goes wrong."""


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds: the pool's state has no event to wait on."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


def get_task(
    queue: FairQueue[str] | AsyncAdaptedQueue[str], within: float = 5.0
) -> asyncio.Task[str]:
    return asyncio.create_task(greenlet_spawn(queue.get, True, within))


# The queue ------------------------------------------------------------------------------------


async def test_sqlalchemys_queue_lets_a_newcomer_take_the_connection_released_for_a_waiter() -> (
    None
):
    """The reason for FairQueue (issue 12); when this fails, SQLAlchemy's queue became fair."""
    queue: AsyncAdaptedQueue[str] = AsyncAdaptedQueue(1)
    waiter = get_task(queue)
    await asyncio.sleep(0.01)
    queue.put_nowait("connection")
    newcomer = await greenlet_spawn(queue.get, True, 5.0)
    assert newcomer == "connection"
    assert not waiter.done()
    waiter.cancel()


async def test_a_released_connection_goes_to_the_oldest_waiter_not_a_newcomer() -> None:
    queue: FairQueue[str] = FairQueue(1)
    first, second = get_task(queue), get_task(queue)
    await until(lambda: queue.waiting() == 2)
    queue.put_nowait("connection")
    newcomer = get_task(queue)
    assert await first == "connection"
    await until(lambda: queue.waiting() == 2)
    assert not second.done()
    assert not newcomer.done()
    queue.put_nowait("connection")
    assert await second == "connection"
    queue.put_nowait("connection")
    assert await newcomer == "connection"
    assert queue.qsize() == 0


async def test_an_idle_connection_is_taken_at_once_and_lifo_takes_the_latest() -> None:
    fifo: FairQueue[str] = FairQueue(2)
    lifo: FairQueue[str] = FairQueue(2, use_lifo=True)
    for queue in (fifo, lifo):
        queue.put_nowait("older")
        queue.put_nowait("newer")
    assert await greenlet_spawn(fifo.get, True, 0.0) == "older"
    assert await greenlet_spawn(lifo.get, True, 0.0) == "newer"


async def test_a_waiter_past_its_timeout_gets_empty_and_is_forgotten() -> None:
    queue: FairQueue[str] = FairQueue(1)
    with pytest.raises(Empty):
        await greenlet_spawn(queue.get, True, 0.05)
    assert queue.waiting() == 0
    queue.put_nowait("connection")
    assert queue.qsize() == 1, "the release must not go to the waiter that gave up"


async def test_no_wait_get_of_an_empty_queue_is_empty_and_a_put_beyond_its_size_is_full() -> None:
    queue: FairQueue[str] = FairQueue(1)
    with pytest.raises(Empty):
        queue.get(block=False)
    queue.put_nowait("kept")
    with pytest.raises(Full):
        queue.put("one too many", block=False)
    assert queue.full()
    assert queue.qsize() == 1


async def test_a_waiter_cancelled_before_it_is_served_gets_nothing() -> None:
    queue: FairQueue[str] = FairQueue(1)
    cancelled, served = get_task(queue), get_task(queue)
    await until(lambda: queue.waiting() == 2)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    queue.put_nowait("connection")
    assert await served == "connection"
    assert queue.waiting() == 0
    assert queue.qsize() == 0


async def test_a_waiter_cancelled_after_the_hand_over_passes_the_connection_on() -> None:
    queue: FairQueue[str] = FairQueue(1)
    cancelled, next_in_line = get_task(queue), get_task(queue)
    await until(lambda: queue.waiting() == 2)
    queue.put_nowait("connection")  # handed to `cancelled`, which has not run yet
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await next_in_line == "connection"


async def test_a_hand_over_nobody_is_left_to_take_becomes_idle_again() -> None:
    queue: FairQueue[str] = FairQueue(1)
    cancelled = get_task(queue)
    await until(lambda: queue.waiting() == 1)
    queue.put_nowait("connection")
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert queue.qsize() == 1
    assert await greenlet_spawn(queue.get, True, 0.0) == "connection"


# The pool -------------------------------------------------------------------------------------


@pytest.fixture
async def small_pool(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Two connections on the test database, waited for at most 2 s."""
    engine = create_async_engine(
        database_url, poolclass=FairQueuePool, pool_size=2, max_overflow=0, pool_timeout=2
    )
    yield engine
    await engine.dispose()


def pool_of(engine: AsyncEngine) -> FairQueuePool:
    pool = engine.sync_engine.pool
    assert isinstance(pool, FairQueuePool)
    return pool


def waiting(engine: AsyncEngine) -> int:
    queue = pool_of(engine)._pool
    assert isinstance(queue, FairQueue)
    return queue.waiting()


async def hold_all(engine: AsyncEngine, count: int) -> list[AsyncConnection]:
    connections = [await engine.connect() for _ in range(count)]
    for connection in connections:
        await connection.execute(text("SELECT 1"))
    return connections


def overtaken(arrived: list[int], served: list[int]) -> int:
    """How many times a client was served before one that had arrived earlier."""
    position = {client: index for index, client in enumerate(served)}
    return sum(
        1
        for earlier_index, earlier in enumerate(arrived)
        for later in arrived[earlier_index + 1 :]
        if position[later] < position[earlier]
    )


async def test_waiters_get_connections_in_the_order_they_came(small_pool: AsyncEngine) -> None:
    arrived: list[int] = []
    served: list[int] = []

    async def client(number: int) -> None:
        arrived.append(number)
        async with small_pool.connect() as connection:
            served.append(number)
            await connection.execute(text("SELECT 1"))
            await asyncio.sleep(0.005)

    async with asyncio.timeout(BOUND_SECONDS):
        blockers = await hold_all(small_pool, 2)
        clients = []
        for number in range(12):  # six times more waiters than connections
            clients.append(asyncio.create_task(client(number)))
            await until(lambda count=number + 1: waiting(small_pool) == count)
        for blocker in blockers:
            await blocker.close()
        # Newcomers while the queue drains: each must queue behind everyone already there.
        for number in range(12, 20):
            await asyncio.sleep(0.003)
            clients.append(asyncio.create_task(client(number)))
        await asyncio.gather(*clients)
    assert served == arrived
    assert overtaken(arrived, served) == 0
    assert pool_of(small_pool).checkedout() == 0


async def test_a_waiter_past_the_pool_timeout_gets_sqlalchemys_timeout_error(
    database_url: str,
) -> None:
    engine = create_async_engine(
        database_url, poolclass=FairQueuePool, pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    try:
        async with asyncio.timeout(BOUND_SECONDS):
            (holder,) = await hold_all(engine, 1)
            with pytest.raises(sa_exc.TimeoutError):
                await engine.connect()
            assert waiting(engine) == 0
            await holder.close()
            async with engine.connect() as connection:  # the pool still lends it
                assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_cancelled_waiters_leave_every_connection_to_the_pool(
    small_pool: AsyncEngine,
) -> None:
    async def wait_for_one() -> None:
        async with small_pool.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async with asyncio.timeout(BOUND_SECONDS):
        blockers = await hold_all(small_pool, 2)
        waiters = [asyncio.create_task(wait_for_one()) for _ in range(5)]
        await until(lambda: waiting(small_pool) == 5)
        for cancelled in waiters[:3]:
            cancelled.cancel()
        await until(lambda: waiting(small_pool) == 2)
        for blocker in blockers:
            await blocker.close()
        await asyncio.gather(*waiters[3:])
        assert all(task.cancelled() for task in waiters[:3])
        pool = pool_of(small_pool)
        assert (pool.checkedout(), pool.checkedin()) == (0, 2)
        # Both connections are there to lend at once, side by side.
        both = await asyncio.wait_for(hold_all(small_pool, 2), timeout=1)
        for connection in both:
            await connection.close()


async def test_an_invalidated_connection_is_replaced(small_pool: AsyncEngine) -> None:
    async with asyncio.timeout(BOUND_SECONDS):
        broken = await small_pool.connect()
        await broken.execute(text("SELECT 1"))
        lost = (await broken.get_raw_connection()).driver_connection
        await broken.invalidate()  # as a dropped connection is, on its first failed use
        await broken.close()
        connections = await hold_all(small_pool, 2)
        drivers = [(await c.get_raw_connection()).driver_connection for c in connections]
        assert lost not in drivers
        for connection in connections:
            await connection.close()
    assert pool_of(small_pool).checkedout() == 0


@pytest.mark.skipif(not POSTGRES_URL, reason="needs KEEL_TEST_DATABASE_URL (PostgreSQL)")
async def test_a_connection_the_server_ends_mid_request_is_replaced(
    make_settings: MakeSettings,
) -> None:
    engine = build_engine(make_settings(db_pool_size=1, db_max_overflow=0))
    try:
        async with asyncio.timeout(BOUND_SECONDS):
            async with engine.connect() as doomed:
                first = (await doomed.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                with pytest.raises(sa_exc.DBAPIError) as ended:
                    await doomed.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
                assert ended.value.connection_invalidated
            async with engine.connect() as replacement:
                second = (await replacement.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


def test_server_databases_get_the_fair_pool_and_sqlite_keeps_its_own(tmp_path: Path) -> None:
    def pool_class(url: str) -> type:
        return type(build_engine(load_settings(database_url=url, _env_file=None)).sync_engine.pool)

    assert pool_class("postgresql+asyncpg://u@127.0.0.1/db") is FairQueuePool
    assert pool_class("sqlite+aiosqlite:///:memory:") is StaticPool
    assert pool_class(f"sqlite+aiosqlite:///{tmp_path / 'keel.db'}") is AsyncAdaptedQueuePool


# The app --------------------------------------------------------------------------------------


async def test_requests_past_the_pool_timeout_answer_503_and_the_pool_recovers(
    make_settings: MakeSettings,
) -> None:
    application = unisolated_app(
        make_settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.3
    )
    async with serve(application) as http, asyncio.timeout(BOUND_SECONDS):
        holder = asyncio.create_task(http.get("/_test/hold", params={"seconds": 1.0}))
        await asyncio.sleep(0.2)
        starved = await asyncio.gather(*(http.get("/_test/db") for _ in range(3)))
        held = await holder
        after = await http.get("/_test/db")
    assert held.status_code == 200
    for response in starved:
        assert_error_body(response, 503, "SERVICE_UNAVAILABLE")
        assert response.headers["retry-after"].isdigit()
    assert after.status_code == 200, "a timed-out waiter must not keep the pool from lending"


async def scrape(http: httpx.AsyncClient, name: str) -> tuple[float, float]:
    """A histogram's (count, sum) from /metrics."""
    text_ = (await http.get("/metrics")).text
    return metric_value(text_, f"{name}_count"), metric_value(text_, f"{name}_sum")


async def test_the_hold_of_each_request_is_observed(make_settings: MakeSettings) -> None:
    application = unisolated_app(make_settings, db_pool_size=2, db_max_overflow=0)
    async with serve(application) as http:
        before = await scrape(http, "keel_db_pool_hold_seconds")
        await asyncio.gather(*(http.get("/_test/hold", params={"seconds": 0.1}) for _ in range(2)))
        count, total = await scrape(http, "keel_db_pool_hold_seconds")
    assert count - before[0] >= 2
    assert total - before[1] >= 0.2, "each request held its connection through its 0.1 s sleep"


@pytest.mark.skipif(not POSTGRES_URL, reason="the fair pool is for server databases")
async def test_the_wait_for_a_connection_is_observed(make_settings: MakeSettings) -> None:
    application = unisolated_app(make_settings, db_pool_size=1, db_max_overflow=0)
    async with serve(application) as http:
        before = await scrape(http, "keel_db_pool_wait_seconds")
        holder = asyncio.create_task(http.get("/_test/hold", params={"seconds": 0.3}))
        await asyncio.sleep(0.1)
        waited = await http.get("/_test/db")  # waits about 0.2 s for the holder's connection
        await holder
        count, total = await scrape(http, "keel_db_pool_wait_seconds")
    assert waited.status_code == 200
    assert count - before[0] >= 2
    assert total - before[1] >= 0.15
