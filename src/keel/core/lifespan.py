"""Everything that holds a resource is opened here and closed on shutdown.

The lifespan yields a state dict; Starlette copies it into every request's `request.state`,
and the dependencies in `core.dependencies` read it from there. Nothing lives in module
globals, so two app instances in one process (tests do this) never share a connection.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any, TypedDict

from fastapi import FastAPI
from redis.asyncio import Redis

from keel.core.cache import ReadCache
from keel.core.config import CoreSettings
from keel.core.database import Database
from keel.core.email import EmailSender, build_email_sender
from keel.core.error_reporting import error_reporting
from keel.core.errors import ConfigError
from keel.core.events import EventHub, RedisEventHub
from keel.core.features import FeatureResources, ResourceContext, Resources
from keel.core.idempotency import DEFAULT_LEASE, IdempotencyStore
from keel.core.jobs.handlers import JobHandlers, JobResources, Maintenance
from keel.core.jobs.queue import JobQueue
from keel.core.jobs.runner import JobRunner
from keel.core.logging import get_logger
from keel.core.metrics import PoolMetrics, mark_process_dead
from keel.core.ratelimit import RateLimiter
from keel.core.readiness import ReadinessCheck
from keel.core.redis import build_redis
from keel.core.redis import ping as redis_ping
from keel.core.security.passwords import PasswordHasher
from keel.core.security.tokens import TokenService
from keel.core.storage import Storage
from keel.core.tracing import Tracing, tracing_of
from keel.migrations import runner as migrations

log = get_logger(__name__)


class AppState(TypedDict):
    """The core resources. Features' resources (`Feature.resources`) join them under keys of
    their own, read through the feature's own dependencies."""

    settings: CoreSettings
    database: Database
    redis: Redis | None
    password_hasher: PasswordHasher
    token_service: TokenService
    rate_limiter: RateLimiter
    email_sender: EmailSender
    read_cache: ReadCache
    event_hub: EventHub
    idempotency: IdempotencyStore
    storage: Storage
    jobs: JobQueue
    readiness_checks: dict[str, ReadinessCheck]


async def prepare_schema(database: Database, settings: CoreSettings) -> None:
    """Development upgrades the database itself; production refuses to run behind head.

    On PostgreSQL the upgrade runs on an engine of its own without the statement timeouts
    (a migration may rightly run for minutes); SQLite has none, and an in-memory database
    exists only on the app's own engine.
    """
    if settings.should_auto_migrate:
        if database.dialect != "postgresql":
            await migrations.upgrade(database.engine)
            return
        unbounded = Database.from_settings(settings, bounded=False)
        try:
            await migrations.upgrade(unbounded.engine)
        finally:
            await unbounded.dispose()
        return
    if settings.is_production and not await migrations.is_at_head(database.engine):
        raise ConfigError(
            ["the database schema is behind this release; run `keel migrate upgrade` first"]
        )


@asynccontextmanager
async def open_state(
    settings: CoreSettings,
    job_handlers: JobHandlers,
    *,
    consume_jobs: bool,
    maintenance: Sequence[Maintenance] = (),
    pool_metrics: PoolMetrics | None = None,
    tracing: Tracing | None = None,
    resources: Sequence[Resources] = (),
) -> AsyncIterator[AppState]:
    """Open every resource, yield them, close them all. The API's lifespan and `keel worker`
    both run on this, so a job sees exactly the resources a request does.

    Each resource registers its close on the exit stack the moment it is open, so a start-up
    that fails part-way closes exactly what was opened, newest first, and shutdown is the
    build order reversed: the features' `resources` (opened last, after the job queue)
    close first, so WebSockets hear 1001 first; the database goes last.
    """
    async with AsyncExitStack() as stack:
        stack.callback(log.info, "stopped")  # registered first, so run last
        stack.callback(mark_process_dead)
        stack.enter_context(error_reporting(settings))  # closed after everything else
        database = Database.from_settings(settings)
        stack.push_async_callback(database.dispose)
        if tracing is not None:
            tracing.instrument_engine(database.engine)
        if pool_metrics is not None:
            pool_metrics.watch(database.engine, settings.db_pool_size)
        redis = build_redis(settings)
        if redis is not None:
            stack.push_async_callback(redis.aclose)
        read_cache = ReadCache.from_settings(settings)
        stack.push_async_callback(read_cache.close)
        storage = Storage.from_settings(settings)
        await prepare_schema(database, settings)

        event_hub = EventHub() if redis is None else RedisEventHub(redis, settings.events_channel)
        await event_hub.start()
        stack.push_async_callback(event_hub.close)
        runner = (
            JobRunner(
                JobResources(settings, database, storage, read_cache, event_hub, tracing),
                job_handlers,
                maintenance,
            )
            if consume_jobs
            else None
        )
        jobs = JobQueue(settings, database, runner)
        await jobs.start()
        stack.push_async_callback(jobs.close)  # hands running jobs back to the queue
        context = ResourceContext(settings, event_hub, tracing)
        contributed: list[FeatureResources] = [
            await stack.enter_async_context(resource(context)) for resource in resources
        ]

        checks: dict[str, ReadinessCheck] = {"database": database.ping}
        if redis is not None:
            checks["redis"] = lambda _: redis_ping(redis)
            checks["events"] = event_hub.ready
        assert settings.jwt_secret is not None  # load_settings guarantees one
        state = AppState(
            settings=settings,
            database=database,
            redis=redis,
            password_hasher=PasswordHasher.from_settings(settings),
            token_service=TokenService(settings),
            rate_limiter=RateLimiter.from_settings(settings, redis),
            email_sender=build_email_sender(settings),
            read_cache=read_cache,
            event_hub=event_hub,
            idempotency=IdempotencyStore(
                settings.jwt_secret.get_secret_value(),
                ttl=timedelta(hours=settings.idempotency_ttl_hours),
                lease=max(
                    [DEFAULT_LEASE]
                    + [c.idempotency_lease for c in contributed if c.idempotency_lease]
                ),
            ),
            storage=storage,
            jobs=jobs,
            readiness_checks=checks,
        )
        for contribution in contributed:
            state.update(contribution.state)  # type: ignore[typeddict-item]
        # Everything allocated so far lives as long as the process: moving it out of the
        # collector's reach keeps full collections (tens of ms with FastAPI, pydantic and
        # SQLAlchemy loaded) from stalling requests.
        gc.freeze()
        log.info(
            "started",
            environment=settings.environment,
            database=database.dialect,
            redis=redis is not None,
            jobs="embedded" if settings.jobs_embedded else "redis",
            consuming_jobs=consume_jobs,
        )
        yield state


def build_lifespan(
    settings: CoreSettings,
    pool_metrics: PoolMetrics | None,
    job_handlers: JobHandlers,
    maintenance: Sequence[Maintenance] = (),
    resources: Sequence[Resources] = (),
) -> Callable[[FastAPI], AbstractAsyncContextManager[Any]]:
    """The API process runs jobs itself only in embedded mode; otherwise it just enqueues."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[AppState]:
        async with open_state(
            settings,
            job_handlers,
            consume_jobs=settings.jobs_embedded,
            maintenance=maintenance,
            pool_metrics=pool_metrics,
            tracing=tracing_of(app),  # flushed by instrument_app's wrapper after this closes
            resources=resources,
        ) as state:
            yield state

    return lifespan
