"""This process's WebSocket fan-out as a lifespan resource, and the dependency for it.

On shutdown every socket is told 1001 (going away) before anything else closes, since a
feature's resources close before the core ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from keel.core.config import settings_as
from keel.core.features import FeatureResources, ResourceContext
from keel.core.serving import GOING_AWAY
from keel.core.state import from_state
from keel.features.realtime.fanout import Realtime
from keel.features.realtime.settings import RealtimeSettings

STATE_KEY = "realtime"


@asynccontextmanager
async def realtime_resource(context: ResourceContext) -> AsyncIterator[FeatureResources]:
    settings = settings_as(RealtimeSettings, context.settings)
    realtime = Realtime(context.event_hub, settings.ws_queue_size)
    try:
        yield FeatureResources(state={STATE_KEY: realtime})
    finally:
        realtime.close_all(GOING_AWAY, "server shutting down")
        realtime.stop()


realtime_of = from_state(STATE_KEY, Realtime)
"""The fan-out, read from a WebSocket's state (a WebSocket route has no `Depends` aliases)."""
