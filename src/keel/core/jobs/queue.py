"""Enqueueing, consuming and sweeping: where the jobs table meets taskiq.

Embedded (no Redis): taskiq's in-memory broker runs each job as a task in this process; at
start-up, jobs a previous run left queued or running are resumed. Redis: the Redis Streams
broker carries job ids to `keel worker` processes through a consumer group; a message is
acknowledged once its job has run, and one left unacknowledged by a dead worker is claimed
by another after an idle timeout.

Acknowledged entries are trimmed from the stream by the same sweeper (`core.jobs.stream`).

The broker is only the fast path. The sweeper in every consuming process is what makes a job
impossible to lose: it sends due retries, re-sends ids whose message vanished (a crash
between commit and send, a Redis that lost its data) and puts jobs whose worker stopped
renewing its lease back on the queue. Duplicate deliveries are harmless: only one claim wins.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from contextlib import suppress
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import AckableMessage, AsyncBroker, InMemoryBroker
from taskiq.acks import AcknowledgeType
from taskiq.api import run_receiver_task
from taskiq_redis import RedisStreamBroker

from keel.core.config import CoreSettings
from keel.core.database import Database, after_commit
from keel.core.events import RECONNECT_FIRST_SECONDS, RECONNECT_MAX_SECONDS
from keel.core.jobs import repository
from keel.core.jobs.models import Job
from keel.core.jobs.runner import JobRunner
from keel.core.jobs.stream import trim_acknowledged
from keel.core.logging import get_logger
from keel.core.models import utcnow
from keel.core.redis import retry_policy

log = get_logger(__name__)

TASK_NAME = "keel.run_job"
CONSUMER_GROUP = "keel-workers"


class _StreamBroker(RedisStreamBroker):
    """Declares the consumer group each time it starts listening, not only at start-up, and
    backs off when Redis is unreachable.

    A Redis that restarts without persistence loses the group; taskiq's receiver restarts
    listening after an error, and without this it would fail with NOGROUP forever. It also
    restarts at once, so without the backoff a worker spins (and logs) while Redis is down.
    """

    _backoff = RECONNECT_FIRST_SECONDS

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        try:
            await self._declare_consumer_group()
            async for message in super().listen():
                self._backoff = RECONNECT_FIRST_SECONDS
                yield message
        except (RedisError, OSError):
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, RECONNECT_MAX_SECONDS)
            raise


def _build_broker(settings: CoreSettings) -> AsyncBroker:
    if settings.jobs_embedded:
        return InMemoryBroker(max_async_tasks=settings.job_concurrency)
    assert settings.redis_url is not None  # the settings refuse redis jobs without Redis
    return _StreamBroker(
        settings.redis_url.get_secret_value(),
        queue_name=settings.job_queue_name,
        consumer_group_name=CONSUMER_GROUP,
        # A new group reads the stream from its start: ids sent before the first worker
        # started (or since Redis restarted) are not skipped.
        consumer_id="0",
        xread_block=1000,
        # Longer than a lease: a live worker's job is never reclaimed from under it.
        idle_timeout=int(settings.job_lease_seconds * 2 * 1000),
        unacknowledged_lock_timeout=settings.job_lease_seconds,
        **retry_policy(),
    )


class JobQueue:
    """One per process. `runner` is None in a process that only enqueues (an API process
    when `keel worker` processes do the work)."""

    def __init__(
        self, settings: CoreSettings, database: Database, runner: JobRunner | None
    ) -> None:
        self.settings = settings
        self._database = database
        self.runner = runner
        self.broker = _build_broker(settings)

        async def run_job(job_id: str) -> None:  # a plain function: taskiq renames it
            if self.runner is not None:
                await self.runner.run(uuid.UUID(job_id))

        self._task = self.broker.register_task(run_job, task_name=TASK_NAME)
        self._background: list[asyncio.Task[Any]] = []

    @property
    def consuming(self) -> bool:
        return self.runner is not None

    async def start(self) -> None:
        if self.consuming:
            self.broker.is_worker_process = True
        try:
            await self.broker.startup()
        except Exception:  # Redis down: serve anyway; sends fail and are retried by sweepers
            log.exception("job_broker_unavailable")
        if not self.consuming:
            return
        if not self.settings.jobs_embedded:
            self._background.append(
                asyncio.create_task(
                    run_receiver_task(
                        self.broker,
                        max_async_tasks=self.settings.job_concurrency,
                        ack_time=AcknowledgeType.WHEN_SAVED,
                        run_startup=False,
                    )
                )
            )
        self._background.append(asyncio.create_task(self._sweep_forever()))

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with suppress(asyncio.CancelledError, Exception):
                await task
        if self.runner is not None:
            await self.runner.stop()
        await self.broker.shutdown()

    async def enqueue(
        self,
        session: AsyncSession,
        kind: str,
        payload: dict[str, Any],
        *,
        owner_id: uuid.UUID | None,
        max_attempts: int | None = None,
    ) -> Job:
        """Add a job in the caller's transaction; its id goes to the broker after commit."""
        job = await repository.add(
            session,
            Job(
                kind=kind,
                payload=payload,
                owner_id=owner_id,
                max_attempts=max_attempts or self.settings.job_max_attempts,
                enqueued_at=utcnow(),
            ),
        )
        job_id = job.id
        after_commit(session, lambda: self.send(job_id))
        return job

    async def send(self, job_id: uuid.UUID) -> None:
        """Hand a job id to the broker; on failure the sweeper sends it again later."""
        try:
            await self._task.kiq(str(job_id))
        except Exception:
            log.exception("job_send_failed", job_id=str(job_id))

    async def sweep(self) -> list[uuid.UUID]:
        """One pass: fail or re-queue jobs whose worker died, then send what is due."""
        now = utcnow()
        resend_before = now - timedelta(seconds=self.settings.job_lease_seconds)
        async with self._database.read_sessionmaker() as session:
            if not await repository.needs_sweep(session, now, resend_before):
                return []
        async with self._database.transaction() as session:
            failed = await repository.requeue_lost(session, now)
            due = await repository.take_due(session, now, resend_before)
        for job_id in failed:
            log.error("job_failed", job_id=str(job_id), error="worker lost on every attempt")
        for job_id in due:
            await self.send(job_id)
        return due

    async def trim_stream(self) -> int:
        """Redis mode: delete the stream entries every job of which was acknowledged (never a
        pending or unread one; see `core.jobs.stream`). The number deleted."""
        if not isinstance(self.broker, RedisStreamBroker):
            return 0
        async with Redis(connection_pool=self.broker.connection_pool) as redis:
            removed = await trim_acknowledged(redis, self.settings.job_queue_name, CONSUMER_GROUP)
        if removed:
            log.debug("job_stream_trimmed", removed=removed)
        return removed

    async def resume_interrupted(self) -> int:
        """Embedded mode, at start-up: this process is the only runner, so a job still marked
        running was cut off by the previous run; it goes back to the queue."""
        async with self._database.read_sessionmaker() as session:
            if not await repository.any_running(session):
                return 0
        async with self._database.transaction() as session:
            resumed = await repository.requeue_interrupted(session, utcnow())
        log.info("jobs_resumed", count=resumed)
        return resumed

    async def maintain(self) -> int:
        """Run every feature's periodic upkeep once (each on its own: one failing does not
        stop the others); how many things they cleaned up."""
        if self.runner is None:
            return 0
        cleaned = 0
        for task in self.runner.maintenance:
            try:
                cleaned += await task(self.runner.resources)
            except Exception:
                log.exception("maintenance_failed", task=getattr(task, "__name__", repr(task)))
        return cleaned

    async def _sweep_forever(self) -> None:
        """Background: start-up must neither wait for nor fail on the database."""
        pending_resume = self.settings.jobs_embedded
        loop = asyncio.get_running_loop()
        next_maintenance = loop.time()
        while True:
            try:
                if pending_resume:
                    if await self.resume_interrupted():
                        await self.sweep()
                    pending_resume = False
                await asyncio.sleep(self.settings.job_sweep_seconds)
                await self.sweep()
                await self.trim_stream()
                if loop.time() >= next_maintenance:
                    next_maintenance = loop.time() + self.settings.maintenance_seconds
                    await self.maintain()
            except Exception:
                log.exception("job_sweep_failed")
                await asyncio.sleep(self.settings.job_sweep_seconds)
