from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, WebSocket

from keel.core.database import Database, get_database
from keel.core.dependencies import AppSettings, Tokens
from keel.core.realtime import Realtime
from keel.core.state import from_state
from keel.features.realtime import service

router = APIRouter(tags=["realtime"])

Connections = Annotated[Realtime, Depends(from_state("realtime", Realtime))]


@router.websocket("/ws")
async def notifications(
    websocket: WebSocket,
    settings: AppSettings,
    tokens: Tokens,
    connections: Connections,
    database: Annotated[Database, Depends(get_database)],
) -> None:
    """Your events as they happen (`job.progress`, `job.finished`, `order.paid`, …)."""
    await service.serve(websocket, settings, database, tokens, connections)
