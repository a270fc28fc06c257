"""A connection pool that lends connections first come, first served (issue 12).

SQLAlchemy's `AsyncAdaptedQueuePool` keeps its idle connections in an `asyncio.Queue`. A
released connection goes into the queue and the oldest waiter is only *woken*; before it
runs, any request that arrives meanwhile finds the connection there and takes it, and the
woken waiter, finding the queue empty, queues again at the back. Under steady load a request
can be overtaken hundreds of times and wait out `KEEL_DB_POOL_TIMEOUT_SECONDS` (a 503) while
the median request takes a tenth of a second.

`FairQueue` hands a released connection straight to the oldest waiter instead, so a
connection is idle only while nobody waits, and a newcomer queues behind everyone already
there. Timeouts are unchanged: a waiter still gives up after the pool timeout (the pool
raises `sqlalchemy.exc.TimeoutError`, answered 503). A waiter cancelled or timed out after
a connection was handed to it passes the connection on, so none is lost.

`FairQueuePool` uses that queue and notes when each checkout began, so the metrics can tell
how long a request waited for its connection (`checkout_began`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from contextlib import suppress
from typing import TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util import await_
from sqlalchemy.util.queue import Empty, Full, QueueCommon

T = TypeVar("T")

_CHECKOUT_BEGAN = "keel_checkout_began"


class FairQueue(QueueCommon[T]):
    """The pool's idle connections, and its waiters in the order they came.

    Invariant: idle items exist only while no one waits (a put serves the oldest waiter
    first), so a get that finds an idle item overtakes nobody. Only the pool uses it, from
    one event loop, and it never puts blocking: a connection the pool cannot keep, it closes.
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo
        self._idle: deque[T] = deque()
        self._waiters: deque[asyncio.Future[T]] = deque()

    def empty(self) -> bool:
        return not self._idle

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._idle)

    def qsize(self) -> int:
        return len(self._idle)

    def waiting(self) -> int:
        """Waiters not yet served (for tests and the benchmark)."""
        return sum(not waiter.done() for waiter in self._waiters)

    def put_nowait(self, item: T) -> None:
        if self._hand_over(item):
            return
        if self.full():
            raise Full
        self._idle.append(item)

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> T:
        if not self._idle:
            raise Empty
        return self._idle.pop() if self.use_lifo else self._idle.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        if self._idle or not block:
            return self.get_nowait()
        return await_(self._wait(within=timeout))

    def _hand_over(self, item: T) -> bool:
        """Give `item` to the oldest waiter still waiting; False if there is none."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        return False

    async def _wait(self, *, within: float | None) -> T:
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(within):
                return await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return waiter.result()  # handed over as the time ran out: it came in time
            raise Empty from None
        except BaseException:
            # Cancelled (the client went away) after a connection was handed over: pass it
            # on, beyond the idle limit if need be (the pool's overflow count still holds it).
            if waiter.done() and not waiter.cancelled() and not self._hand_over(waiter.result()):
                self._idle.append(waiter.result())
            raise
        finally:
            if not waiter.done() or waiter.cancelled():  # timed out or cancelled unserved
                waiter.cancel()
                with suppress(ValueError):  # unless a put already dropped it
                    self._waiters.remove(waiter)


class FairQueuePool(AsyncAdaptedQueuePool):
    """`AsyncAdaptedQueuePool` on a `FairQueue`, noting when each checkout began."""

    _queue_class: type[QueueCommon[ConnectionPoolEntry]] = FairQueue
    # Log as the pool it replaces: under `sqlalchemy`, whose level logging.py keeps at WARNING
    # (SQLAlchemy would otherwise name the logger after this module, outside that rule).
    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"

    def _do_get(self) -> ConnectionPoolEntry:
        began = time.perf_counter()
        record = super()._do_get()
        if record.record_info is not None:
            record.record_info[_CHECKOUT_BEGAN] = began
        return record


def checkout_began(record: ConnectionPoolEntry) -> float | None:
    """When (`time.perf_counter()`) the checkout that lent `record` began asking the pool, on a
    `FairQueuePool`; None on any other pool."""
    began = (record.record_info or {}).get(_CHECKOUT_BEGAN)
    return began if isinstance(began, float) else None
