"""One WebSocket connection from handshake to close.

Authentication comes first, with the access token in the `token` query parameter or in a
first message `{"type": "auth", "token": "…"}` (which keeps it out of URLs and proxy logs);
`scope=all` asks for every user's events and is for admins only. Any failure closes with
1008 before a single event is sent. Then three things run until one ends: delivery from the
connection's bounded mailbox (in the handler) and a reader waiting for the client to go away
(one task); `Realtime`'s one clock flags the heartbeat and closes the socket when the access
token expires (the client reconnects with a fresh one). Idle sockets are the common case, so
each holds only that: no ORM user, no timers or sleeping tasks, no lock (only the handler
sends once authenticated).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from keel.core.database import Database
from keel.core.errors import UnauthorizedError
from keel.core.logging import get_logger
from keel.core.models import timestamp, utcnow
from keel.core.security.tokens import TokenService
from keel.features.auth import service as auth
from keel.features.realtime.fanout import GONE, POLICY_VIOLATION, Close, Mailbox, Realtime
from keel.features.realtime.settings import RealtimeSettings
from keel.features.users.models import Role

log = get_logger(__name__)


class RefusedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _credentials(websocket: WebSocket, settings: RealtimeSettings) -> tuple[str, str]:
    """(token, scope) from the query string, or else from the first message."""
    token = websocket.query_params.get("token")
    scope = websocket.query_params.get("scope", "own")
    if token:
        return token, scope
    try:
        async with asyncio.timeout(settings.ws_auth_timeout_seconds):
            first = await websocket.receive_text()
    except TimeoutError:
        raise RefusedError("authenticate within the first message") from None
    try:
        message: Any = json.loads(first)
        if not isinstance(message, dict) or message.get("type") != "auth":
            raise ValueError
        return str(message["token"]), str(message.get("scope", "own"))
    except (ValueError, KeyError):
        raise RefusedError('the first message must be {"type": "auth", "token": "..."}') from None


@dataclass(frozen=True, slots=True)
class _Subscriber:
    """What a connection keeps of its authentication (not the ORM user: only these)."""

    user_id: uuid.UUID
    session_id: uuid.UUID | None
    everyone: bool
    expires_at: datetime


async def _authenticate(
    websocket: WebSocket, settings: RealtimeSettings, database: Database, tokens: TokenService
) -> _Subscriber:
    token, scope = await _credentials(websocket, settings)
    if scope not in {"own", "all"}:
        raise RefusedError("scope is 'own' or 'all'")
    try:
        principal = await auth.authenticate(database.reads, tokens, token)
    except UnauthorizedError as exc:
        raise RefusedError(exc.message) from None
    everyone = scope == "all"
    if everyone and not principal.user.has_role(Role.ADMIN):
        raise RefusedError("only admins may subscribe to every user's events")
    return _Subscriber(principal.user.id, principal.session_id, everyone, principal.expires_at)


def _text(message: dict[str, Any]) -> str:
    """A message as Starlette's `send_json` would write it."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


_SUBSCRIBED = {scope: _text({"type": "subscribed", "scope": scope}) for scope in ("own", "all")}


async def _deliver(websocket: WebSocket, mailbox: Mailbox) -> None:
    """Send the mailbox to the socket until a close comes out of it (then send that)."""
    while True:
        item, dropped = await mailbox.get()
        if dropped:
            await websocket.send_text(
                _text({"type": "lagged", "dropped": dropped, "at": timestamp(utcnow())})
            )
        if type(item) is str:
            await websocket.send_text(item)
        elif isinstance(item, Close):
            if item is not GONE:
                await websocket.close(code=item.code, reason=item.reason)
            return
        else:
            await websocket.send_text(_text({"type": "heartbeat", "at": timestamp(utcnow())}))


async def _read_until_closed(websocket: WebSocket, mailbox: Mailbox) -> None:
    """Client messages carry nothing after authentication; wait for the disconnect, then end
    the delivery loop (the socket is gone, so there is nothing to send a close frame on)."""
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        mailbox.hang_up()


async def serve(
    websocket: WebSocket,
    settings: RealtimeSettings,
    database: Database,
    tokens: TokenService,
    realtime: Realtime,
) -> None:
    """One task of its own per connection (the reader) besides the handler's (delivery)."""
    await websocket.accept()
    try:
        subscriber = await _authenticate(websocket, settings, database, tokens)
    except RefusedError as refusal:
        with suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=POLICY_VIOLATION, reason=refusal.reason)
        return
    except WebSocketDisconnect:
        return
    mailbox = realtime.connect(
        subscriber.user_id,
        session_id=subscriber.session_id,
        everyone=subscriber.everyone,
        heartbeat_seconds=settings.ws_heartbeat_seconds,
        expires_in=(subscriber.expires_at - utcnow()).total_seconds(),
    )
    reader = asyncio.create_task(_read_until_closed(websocket, mailbox))
    try:
        await websocket.send_text(_SUBSCRIBED["all" if subscriber.everyone else "own"])
        await _deliver(websocket, mailbox)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away while we were sending
    finally:
        realtime.disconnect(mailbox)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
