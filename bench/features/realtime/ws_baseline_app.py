"""The baseline for bench/websocket.py: a bare Starlette app fanning Redis events out to sockets.

It does what Keel's realtime path does for an admin watching every event, with nothing around
it: no middleware, no settings library, no database, no dependency injection. One Redis pub/sub
subscription per process (read the way Keel reads it, `get_message(timeout=1.0)` in a loop);
each message is decoded, stripped of `user_id` and encoded once into the text every client
gets (`{"type", "id", "at", "data"}`, the same bytes Keel sends). Each connection has a bounded
mailbox that drops its oldest event when full and then says so with
`{"type": "lagged", "dropped": n}`, and one task that writes the mailbox to the socket.

A connection authenticates with `?token=` (PyJWT, HS256, the same secret, issuer and audience
as Keel, `typ` must be `access`), is answered `{"type": "subscribed", "scope": ...}`, and then
only waits for the client to go away. Unlike Keel it does not look the user up in the database,
send heartbeats, close on token expiry or check the admin role for `scope=all`.

Configured from the environment: BASELINE_REDIS_URL, BASELINE_EVENTS_CHANNEL,
BASELINE_JWT_SECRET, BASELINE_JWT_ISSUER, BASELINE_JWT_AUDIENCE, BASELINE_WS_QUEUE_SIZE.
Run with `uvicorn ws_baseline_app:app --app-dir bench --ws websockets-sansio`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import jwt
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

REDIS_URL = os.environ.get("BASELINE_REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL = os.environ.get("BASELINE_EVENTS_CHANNEL", "keel:events")
JWT_SECRET = os.environ.get("BASELINE_JWT_SECRET", "")
JWT_ISSUER = os.environ.get("BASELINE_JWT_ISSUER", "keel")
JWT_AUDIENCE = os.environ.get("BASELINE_JWT_AUDIENCE", "keel-api")
QUEUE_SIZE = int(os.environ.get("BASELINE_WS_QUEUE_SIZE", "100"))
POLICY_VIOLATION = 1008


class Mailbox:
    """A bounded FIFO of encoded messages that drops the oldest when full."""

    __slots__ = ("dropped", "items", "ready")

    def __init__(self) -> None:
        self.items: deque[str] = deque()
        self.ready = asyncio.Event()
        self.dropped = 0

    def put(self, text: str) -> None:
        if len(self.items) >= QUEUE_SIZE:
            self.items.popleft()
            self.dropped += 1
        self.items.append(text)
        self.ready.set()

    async def get(self) -> tuple[str, int]:
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        dropped, self.dropped = self.dropped, 0
        return self.items.popleft(), dropped


mailboxes: set[Mailbox] = set()
subscribed = asyncio.Event()


async def listen(redis: Redis) -> None:
    """Keep one subscription to the channel and hand each event to every mailbox."""
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(CHANNEL)
                subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        event = json.loads(message["data"])
                        event.pop("user_id", None)
                    except (ValueError, AttributeError):
                        continue
                    text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
                    for mailbox in mailboxes:
                        mailbox.put(text)
        except (RedisError, OSError):
            subscribed.clear()
            await asyncio.sleep(0.1)


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    redis = Redis.from_url(REDIS_URL, socket_connect_timeout=2.0, health_check_interval=30)
    listener = asyncio.create_task(listen(redis))
    try:
        yield
    finally:
        listener.cancel()
        with suppress(asyncio.CancelledError):
            await listener
        await redis.aclose()


async def health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def ready(_: Request) -> JSONResponse:
    return JSONResponse(
        {"events": subscribed.is_set()}, status_code=200 if subscribed.is_set() else 503
    )


def authenticated(token: str | None) -> bool:
    if not token:
        return False
    try:
        claims = jwt.decode(
            token,
            JWT_SECRET,
            algorithms=["HS256"],
            issuer=JWT_ISSUER,
            audience=JWT_AUDIENCE,
            options={"require": ["sub", "exp", "iat", "jti", "iss", "aud", "typ", "sid"]},
        )
    except jwt.InvalidTokenError:
        return False
    return claims.get("typ") == "access"


async def deliver(websocket: WebSocket, mailbox: Mailbox) -> None:
    while True:
        text, dropped = await mailbox.get()
        if dropped:
            await websocket.send_text(json.dumps({"type": "lagged", "dropped": dropped}))
        await websocket.send_text(text)


async def notifications(websocket: WebSocket) -> None:
    await websocket.accept()
    scope = websocket.query_params.get("scope", "own")
    if not authenticated(websocket.query_params.get("token")) or scope not in {"own", "all"}:
        await websocket.close(code=POLICY_VIOLATION, reason="not authenticated")
        return
    mailbox = Mailbox()
    mailboxes.add(mailbox)
    sender = asyncio.create_task(deliver(websocket, mailbox))
    try:
        await websocket.send_json({"type": "subscribed", "scope": scope})
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        mailboxes.discard(mailbox)
        sender.cancel()
        with suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
            await sender


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/ready", ready),
        WebSocketRoute("/api/v1/ws", notifications),
    ],
    lifespan=lifespan,
)
