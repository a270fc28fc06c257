"""The Redis job stream stays bounded, and trimming never drops a job not yet acknowledged.

Real Redis (KEEL_TEST_REDIS_URL): the trimming rule on a hand-made stream and consumer group,
then the real worker and sweeper over many jobs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import func, select

from keel.core.jobs.models import Job
from keel.core.jobs.queue import CONSUMER_GROUP
from keel.core.jobs.stream import trim_acknowledged
from keel.core.lifespan import open_state
from keel.settings import Settings
from tests.support.databases import REDIS_URL
from tests.support.jobs import TEST_HANDLERS

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs KEEL_TEST_REDIS_URL")

GROUP = "workers"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    assert REDIS_URL is not None
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def stream(redis: Redis) -> AsyncIterator[str]:
    name = f"keel:test-stream:{uuid.uuid4().hex}"
    await redis.xgroup_create(name, GROUP, id="0", mkstream=True)
    try:
        yield name
    finally:
        await redis.delete(name)


async def ids(redis: Redis, stream: str) -> list[str]:
    return [entry_id.decode() for entry_id, _ in await redis.xrange(stream)]


async def test_trimming_keeps_pending_and_unread_entries(redis: Redis, stream: str) -> None:
    added = [(await redis.xadd(stream, {"n": n})).decode() for n in range(10)]
    delivered = await redis.xreadgroup(GROUP, "worker-a", {stream: ">"}, count=6)
    read = [entry_id.decode() for entry_id, _ in delivered[0][1]]
    assert read == added[:6]
    # Acknowledged: 0, 1, 2, 4, 5. Entry 3 is pending (a worker holds it); 6-9 are unread.
    await redis.xack(stream, GROUP, *[added[i] for i in (0, 1, 2, 4, 5)])

    assert await trim_acknowledged(redis, stream, GROUP) == 3
    assert await ids(redis, stream) == added[3:]  # the pending one and all after it stay

    await redis.xack(stream, GROUP, added[3])
    assert await trim_acknowledged(redis, stream, GROUP) == 3
    assert await ids(redis, stream) == added[6:]  # the unread ones stay

    again = await redis.xreadgroup(GROUP, "worker-b", {stream: ">"}, count=10)
    assert [entry_id.decode() for entry_id, _ in again[0][1]] == added[6:]  # still delivered
    assert await trim_acknowledged(redis, stream, GROUP) == 0  # pending, not acknowledged
    await redis.xack(stream, GROUP, *added[6:])
    assert await trim_acknowledged(redis, stream, GROUP) == 4
    assert await redis.xlen(stream) == 0


async def test_nothing_is_trimmed_without_the_consumer_group(redis: Redis) -> None:
    name = f"keel:test-stream:{uuid.uuid4().hex}"
    try:
        await redis.xadd(name, {"n": 1})
        assert await trim_acknowledged(redis, name, GROUP) == 0  # nobody has read it yet
        assert await trim_acknowledged(redis, f"{name}:missing", GROUP) == 0
        assert await redis.xlen(name) == 1
    finally:
        await redis.delete(name)


async def test_the_stream_stays_bounded_after_many_jobs(
    fast_jobs_settings: Settings, redis: Redis
) -> None:
    assert REDIS_URL is not None
    queue = f"keel:test-jobs:{uuid.uuid4().hex}"
    settings = fast_jobs_settings.model_copy(
        update={"job_broker": "redis", "redis_url": SecretStr(REDIS_URL), "job_queue_name": queue}
    )
    jobs = 300
    try:
        async with open_state(settings, TEST_HANDLERS, consume_jobs=True) as state:
            for _ in range(jobs // 100):
                async with state["database"].transaction() as session:
                    for _ in range(100):
                        await state["jobs"].enqueue(session, "test.echo", {}, owner_id=None)
            for _ in range(400):
                async with state["database"].sessionmaker() as session:
                    done = await session.scalar(
                        select(func.count()).select_from(Job).where(Job.status == "succeeded")
                    )
                if done == jobs:
                    break
                await asyncio.sleep(0.05)
            assert done == jobs
            for _ in range(100):  # the sweeper runs every 0.05 s here
                if await redis.xlen(queue) == 0:
                    break
                await asyncio.sleep(0.05)
            assert await redis.xlen(queue) == 0  # every entry was acknowledged, then trimmed
            info = await redis.xinfo_groups(queue)
            assert [g["name"].decode() for g in info] == [CONSUMER_GROUP]
    finally:
        await redis.delete(queue)
