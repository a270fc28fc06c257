"""On shutdown every WebSocket is told 1001 before anything else closes: the fan-out is a
feature resource, so it closes before the core ones (the database last)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from keel.core.lifespan import open_state
from keel.core.serving import GOING_AWAY
from keel.features.realtime.fanout import Close, Realtime
from keel.features.realtime.resources import STATE_KEY, realtime_resource
from tests.conftest import MakeSettings
from tests.support.jobs import TEST_HANDLERS
from tests.support.timeline import database_name, recorded_timeline, with_redis


@pytest.fixture
def timeline() -> Iterator[list[Any]]:
    with recorded_timeline() as seen:
        yield seen


async def test_shutdown_closes_websockets_first_and_the_database_last(
    make_settings: MakeSettings, timeline: list[Any]
) -> None:
    settings = with_redis(make_settings())
    parts = [realtime_resource]
    async with open_state(settings, TEST_HANDLERS, consume_jobs=True, resources=parts) as state:
        realtime = state[STATE_KEY]  # type: ignore[literal-required]
        assert isinstance(realtime, Realtime)
        mailbox = realtime.connect(uuid.uuid4())

        def disposed(_: Engine) -> None:
            timeline.append(("websockets already told to close", mailbox.has_items()))

        event.listen(state["database"].engine.sync_engine, "engine_disposed", disposed)
        assert timeline == []
    item, _ = await mailbox.get()
    assert item == Close(GOING_AWAY, "server shutting down")
    name = database_name(settings.database_url)
    assert timeline == [("disposed", name), ("websockets already told to close", True), "stopped"]


async def test_without_the_feature_no_fanout_is_opened(make_settings: MakeSettings) -> None:
    async with open_state(make_settings(), TEST_HANDLERS, consume_jobs=False) as state:
        assert STATE_KEY not in state
