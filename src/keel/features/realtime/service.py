"""One WebSocket connection from handshake to close.

Authentication comes first, with the access token in the `token` query parameter or in a
first message `{"type": "auth", "token": "…"}` (which keeps it out of URLs and proxy logs);
`scope=all` asks for every user's events and is for admins only. Any failure closes with
1008 before a single event is sent. Then three things run until one ends: delivery from the
connection's bounded mailbox, a heartbeat, and a timer that closes the socket when the access
token expires (the client reconnects with a fresh one).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from keel.core.config import Settings
from keel.core.database import Database
from keel.core.errors import UnauthorizedError
from keel.core.logging import get_logger
from keel.core.models import timestamp, utcnow
from keel.core.realtime import POLICY_VIOLATION, Close, Mailbox, Realtime
from keel.core.security.tokens import TokenService
from keel.features.auth import service as auth
from keel.features.auth.service import Principal
from keel.features.users.models import Role

log = get_logger(__name__)


class RefusedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _credentials(websocket: WebSocket, settings: Settings) -> tuple[str, str]:
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


async def _authenticate(
    websocket: WebSocket, settings: Settings, database: Database, tokens: TokenService
) -> tuple[Principal, bool]:
    token, scope = await _credentials(websocket, settings)
    if scope not in {"own", "all"}:
        raise RefusedError("scope is 'own' or 'all'")
    try:
        async with database.read_sessionmaker() as session:
            principal = await auth.authenticate(session, tokens, token)
    except UnauthorizedError as exc:
        raise RefusedError(exc.message) from None
    everyone = scope == "all"
    if everyone and not principal.user.has_role(Role.ADMIN):
        raise RefusedError("only admins may subscribe to every user's events")
    return principal, everyone


class _Connection:
    def __init__(self, websocket: WebSocket, mailbox: Mailbox) -> None:
        self.websocket = websocket
        self.mailbox = mailbox
        self._sending = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._sending:
            await self.websocket.send_json(message)

    async def close(self, code: int, reason: str) -> None:
        async with self._sending:
            await self.websocket.close(code=code, reason=reason)

    async def deliver(self) -> None:
        while True:
            item, dropped = await self.mailbox.get()
            if dropped:
                await self.send({"type": "lagged", "dropped": dropped, "at": timestamp(utcnow())})
            if isinstance(item, Close):
                await self.close(item.code, item.reason)
                return
            await self.send(item.message())

    async def heartbeat(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.send({"type": "heartbeat", "at": timestamp(utcnow())})

    async def expire(self, principal: Principal) -> None:
        await asyncio.sleep(max((principal.expires_at - utcnow()).total_seconds(), 0))
        await self.close(POLICY_VIOLATION, "token expired")

    async def read_until_closed(self) -> None:
        """Client messages carry nothing after authentication; wait for the disconnect."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


async def serve(
    websocket: WebSocket,
    settings: Settings,
    database: Database,
    tokens: TokenService,
    realtime: Realtime,
) -> None:
    await websocket.accept()
    try:
        principal, everyone = await _authenticate(websocket, settings, database, tokens)
    except RefusedError as refusal:
        with suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=POLICY_VIOLATION, reason=refusal.reason)
        return
    except WebSocketDisconnect:
        return
    mailbox = realtime.connect(
        principal.user.id, session_id=principal.session_id, everyone=everyone
    )
    connection = _Connection(websocket, mailbox)
    tasks = [
        asyncio.create_task(connection.deliver()),
        asyncio.create_task(connection.heartbeat(settings.ws_heartbeat_seconds)),
        asyncio.create_task(connection.expire(principal)),
        asyncio.create_task(connection.read_until_closed()),
    ]
    try:
        await connection.send({"type": "subscribed", "scope": "all" if everyone else "own"})
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away while we were sending
    finally:
        realtime.disconnect(mailbox)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
