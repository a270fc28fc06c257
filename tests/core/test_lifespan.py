"""The lifespan's exit stack: a start-up that fails part-way closes what it had opened, and a
normal shutdown closes in the reverse of the build order (WebSockets first, database last).

Real parts: the test database, real Redis when KEEL_TEST_REDIS_URL is set, a real directory
that cannot be created; disposal is observed through SQLAlchemy's own `engine_disposed` event
and Redis's own client list.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from keel.core.config import Settings, load_settings
from keel.core.errors import ConfigError
from keel.core.lifespan import open_state
from keel.core.logging import configure_logging
from keel.core.realtime import Close
from keel.core.serving import GOING_AWAY
from tests.conftest import FreshDatabase, MakeSettings
from tests.support.databases import REDIS_URL
from tests.support.jobs import TEST_HANDLERS


@pytest.fixture
def timeline() -> Iterator[list[Any]]:
    """What happened, in order: each engine disposed (by URL) and each "stopped" line logged."""
    seen: list[Any] = []

    def disposed(engine: Engine) -> None:
        seen.append(("disposed", engine.url.database))

    class Stopped(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if isinstance(record.msg, dict) and record.msg.get("event") == "stopped":
                seen.append("stopped")

    configure_logging()  # as the app factory does: structlog lines reach stdlib handlers
    handler = Stopped()
    root = logging.getLogger()
    root.addHandler(handler)
    event.listen(Engine, "engine_disposed", disposed)
    try:
        yield seen
    finally:
        event.remove(Engine, "engine_disposed", disposed)
        root.removeHandler(handler)


def with_redis(settings: Settings) -> Settings:
    if REDIS_URL is None:
        return settings
    return settings.model_copy(
        update={"redis_url": SecretStr(REDIS_URL), "events_channel": f"t:{uuid.uuid4()}"}
    )


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


async def test_shutdown_closes_websockets_first_and_the_database_last(
    make_settings: MakeSettings, timeline: list[Any]
) -> None:
    settings = with_redis(make_settings())
    async with open_state(settings, TEST_HANDLERS, consume_jobs=True) as state:
        mailbox = state["realtime"].connect(uuid.uuid4())
        redis = state["redis"]
        client_id = None if redis is None else await redis.client_id()

        def disposed(_: Engine) -> None:
            timeline.append(("websockets already told to close", mailbox.has_items()))

        event.listen(state["database"].engine.sync_engine, "engine_disposed", disposed)
        assert timeline == []
    item, _ = await mailbox.get()
    assert item == Close(GOING_AWAY, "server shutting down")
    name = database_name(settings.database_url)
    assert timeline == [("disposed", name), ("websockets already told to close", True), "stopped"]
    if client_id is not None:
        assert REDIS_URL is not None
        observer = Redis.from_url(REDIS_URL)
        try:
            clients = await observer.client_list()
        finally:
            await observer.aclose()
        assert str(client_id) not in {str(c["id"]) for c in clients}  # closed on the server


def database_name(url: str) -> str | None:
    return make_url(url).database
