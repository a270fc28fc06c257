"""Realtime notifications over WebSocket: each user's own events, admins optionally all.

The route is a plain Starlette WebSocket route that reads the lifespan's objects with the same
`from_state` getters the dependency aliases use, rather than a FastAPI route with injected
dependencies: FastAPI keeps a solved dependency graph and two exit stacks alive for as long as
a socket is open, about 6 KiB for each idle connection (docs/decisions.md, "Realtime").
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.websockets import WebSocket

from keel.core.database import get_database
from keel.core.dependencies import settings_of
from keel.core.security.tokens import TokenService
from keel.core.state import from_state
from keel.features.realtime import service
from keel.features.realtime.resources import realtime_of
from keel.features.realtime.settings import RealtimeSettings

_settings = settings_of(RealtimeSettings)
_tokens = from_state("token_service", TokenService)


async def notifications(websocket: WebSocket) -> None:
    """Your events as they happen (`job.progress`, `job.finished`, `order.paid`, …)."""
    await service.serve(
        websocket,
        await _settings(websocket),
        await get_database(websocket),
        await _tokens(websocket),
        await realtime_of(websocket),
    )


router = APIRouter(tags=["realtime"])
router.add_websocket_route("/ws", notifications)
