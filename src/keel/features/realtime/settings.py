"""The realtime feature's settings: how its sockets are kept alive, buffered and signed in.

They leave with the feature (`keel.settings` composes them). `KEEL_WS_COMPRESSION` stays
core's: the server (core/serving.py) negotiates compression for every WebSocket route.
"""

from __future__ import annotations

from pydantic import Field

from keel.core.config import CoreSettings


class RealtimeSettings(CoreSettings):
    """`KEEL_WS_*` of the notifications socket."""

    ws_heartbeat_seconds: float = Field(default=25.0, gt=0, le=3600)
    """How often a socket is sent a `heartbeat` message."""
    ws_queue_size: int = Field(default=100, ge=1, le=100_000)
    """Events buffered per slow connection."""
    ws_auth_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """Time a new socket has to send its credentials."""
