"""The lifespan's exit stack: a start-up that fails part-way closes what it had opened, and a
normal shutdown closes in the reverse of the build order (features' resources first, database
last).

Real parts: the test database, real Redis when KEEL_TEST_REDIS_URL is set, a real directory
that cannot be created; disposal is observed through SQLAlchemy's own `engine_disposed` event
and Redis's own client list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from keel.core.errors import ConfigError
from keel.core.features import FeatureResources, ResourceContext, Resources
from keel.core.idempotency import DEFAULT_LEASE
from keel.core.lifespan import open_state
from keel.settings import load_settings
from tests.conftest import FreshDatabase, MakeSettings
from tests.support.databases import REDIS_URL
from tests.support.jobs import TEST_HANDLERS
from tests.support.timeline import database_name, recorded_timeline, with_redis


@pytest.fixture
def timeline() -> Iterator[list[Any]]:
    with recorded_timeline() as seen:
        yield seen


async def test_a_resource_failing_to_open_closes_what_was_opened_before_it(
    make_settings: MakeSettings, tmp_path: Path, timeline: list[Any]
) -> None:
    """Storage is built after the engine, Redis, the cache and the gateway: its directory
    cannot be created (a regular file is in the way), and all of those are closed."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings = with_redis(make_settings(storage_url=f"file://{blocker}/files"))
    with pytest.raises(OSError, match="Not a directory"):
        async with open_state(settings, TEST_HANDLERS, consume_jobs=False):
            pytest.fail("started although storage could not be opened")
    database = settings.database_url
    assert timeline == [("disposed", database_name(database)), "stopped"]


async def test_a_failing_schema_check_closes_the_engine_and_redis(
    fresh_database: FreshDatabase, timeline: list[Any]
) -> None:
    """Production refuses a database behind head after it has connected to it."""
    url = await fresh_database("lifespan")
    settings = with_redis(
        load_settings(
            environment="production",
            database_url=url,
            jwt_secret="x" * 64,
            storage_url="memory://",
            _env_file=None,
        )
    )
    with pytest.raises(ConfigError, match="keel migrate upgrade"):
        async with open_state(settings, TEST_HANDLERS, consume_jobs=False):
            pytest.fail("started behind head")
    assert timeline == [("disposed", database_name(url)), "stopped"]


def recording_resource(timeline: list[Any], name: str, lease: timedelta | None = None) -> Resources:
    """A feature's lifespan part that records when it is closed, and what it saw open."""

    @asynccontextmanager
    async def resource(context: ResourceContext) -> AsyncIterator[FeatureResources]:
        timeline.append(("opened", name, context.settings.app_name))
        try:
            yield FeatureResources(state={name: context.event_hub}, idempotency_lease=lease)
        finally:
            timeline.append(("closed", name))

    return resource


async def test_shutdown_closes_the_features_resources_first_and_the_database_last(
    make_settings: MakeSettings, timeline: list[Any]
) -> None:
    settings = with_redis(make_settings())
    parts = [recording_resource(timeline, "first"), recording_resource(timeline, "second")]
    async with open_state(settings, TEST_HANDLERS, consume_jobs=True, resources=parts) as state:
        redis = state["redis"]
        client_id = None if redis is None else await redis.client_id()
        assert state["first"] is state["event_hub"]  # type: ignore[typeddict-item]
        opened = [("opened", "first", settings.app_name), ("opened", "second", settings.app_name)]
        assert timeline == opened
    name = database_name(settings.database_url)
    closed = [("closed", "second"), ("closed", "first")]  # newest first
    assert timeline == [*opened, *closed, ("disposed", name), "stopped"]
    if client_id is not None:
        assert REDIS_URL is not None
        observer = Redis.from_url(REDIS_URL)
        try:
            clients = await observer.client_list()
        finally:
            await observer.aclose()
        assert str(client_id) not in {str(c["id"]) for c in clients}  # closed on the server


async def test_the_idempotency_lease_is_the_longest_a_feature_needs(
    make_settings: MakeSettings, timeline: list[Any]
) -> None:
    settings = make_settings()
    async with open_state(settings, TEST_HANDLERS, consume_jobs=False) as state:
        assert state["idempotency"].lease == DEFAULT_LEASE  # no feature asks for more
    long = DEFAULT_LEASE * 3
    parts = [
        recording_resource(timeline, "short", DEFAULT_LEASE / 2),
        recording_resource(timeline, "long", long),
        recording_resource(timeline, "none"),
    ]
    async with open_state(settings, TEST_HANDLERS, consume_jobs=False, resources=parts) as state:
        assert state["idempotency"].lease == long


async def test_a_feature_resource_failing_to_open_closes_the_ones_opened_before_it(
    make_settings: MakeSettings, timeline: list[Any]
) -> None:
    @asynccontextmanager
    async def broken(context: ResourceContext) -> AsyncIterator[FeatureResources]:
        raise RuntimeError("the gateway refused the connection")
        yield FeatureResources()  # pragma: no cover - never reached

    settings = make_settings()
    parts = [recording_resource(timeline, "good"), broken]
    with pytest.raises(RuntimeError, match="refused"):
        async with open_state(settings, TEST_HANDLERS, consume_jobs=False, resources=parts):
            pytest.fail("started although a feature's resource failed")
    name = database_name(settings.database_url)
    assert timeline == [
        ("opened", "good", settings.app_name),
        ("closed", "good"),
        ("disposed", name),
        "stopped",
    ]
