"""The event hub: domain events (`order.paid`, `job.progress`, …) fanned out to subscribers.

`EventHub` delivers within this process. `RedisEventHub` publishes to a Redis pub/sub channel
instead and delivers what arrives on it, so an event produced anywhere (an API process, a
job worker) reaches the subscribers of every process, its own included, exactly once each.
Each process holds one subscription, re-established with backoff when Redis goes away;
readiness reports whether it is live. Events are notifications, not records: one published
while Redis is down is dropped (and logged), never an error for the caller. Publish from
`after_commit`, so a rolled-back change is never announced.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from keel.core.logging import get_logger
from keel.core.models import timestamp, utcnow

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened, for the sockets of `user_id` (of everyone when it is None)."""

    type: str
    id: str
    user_id: uuid.UUID | None
    data: dict[str, Any]
    at: datetime = field(default_factory=utcnow)

    def message(self) -> dict[str, Any]:
        """The SPEC's realtime message (who it is for is not part of it)."""
        return {"type": self.type, "id": self.id, "at": timestamp(self.at), "data": self.data}

    def wire(self) -> str:
        """The text every WebSocket that may see this event is sent: built once per event."""
        return json.dumps(self.message(), separators=(",", ":"), ensure_ascii=False)

    def encode(self) -> str:
        user = None if self.user_id is None else str(self.user_id)
        return json.dumps({**self.message(), "user_id": user}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | bytes) -> Event:
        value = json.loads(raw)
        user = value.get("user_id")
        return cls(
            type=value["type"],
            id=value["id"],
            user_id=None if user is None else uuid.UUID(user),
            data=value.get("data") or {},
            at=datetime.fromisoformat(value["at"]),
        )


Subscriber = Callable[[Event], Awaitable[None]]


class EventHub:
    """In-process delivery (the embedded default)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it again."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    async def publish(self, event: Event) -> None:
        await self._deliver(event)

    async def _deliver(self, event: Event) -> None:
        """Deliver to every subscriber; one failing subscriber does not stop the others."""
        for subscriber in list(self._subscribers):
            try:
                await subscriber(event)
            except Exception:
                log.exception("event_subscriber_failed", event_type=event.type)

    async def start(self) -> None:
        """Nothing to connect in-process."""

    async def close(self) -> None:
        """Nothing to disconnect in-process."""

    async def ready(self, _: float) -> None:
        """In-process delivery is always ready."""


RECONNECT_FIRST_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0
"""How long the Redis hub waits before resubscribing: doubling from the first to the most."""


class RedisEventHub(EventHub):
    """Publish through Redis pub/sub; one subscription per process, kept alive."""

    def __init__(self, redis: Redis, channel: str) -> None:
        super().__init__()
        self._redis = redis
        self._channel = channel
        self._listener: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def publish(self, event: Event) -> None:
        try:
            await self._redis.publish(self._channel, event.encode())
        except (RedisError, OSError) as exc:
            log.warning("event_publish_failed", event_type=event.type, error=type(exc).__name__)

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen_forever(), name="keel-events")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener

    async def ready(self, _: float) -> None:
        if not self.subscribed.is_set():
            raise ConnectionError("not subscribed to the event channel")

    async def _listen_forever(self) -> None:
        delay = RECONNECT_FIRST_SECONDS
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                if self.subscribed.is_set():  # it was up: lost now, so start backing off afresh
                    log.warning("event_subscription_lost", error=type(exc).__name__)
                    delay = RECONNECT_FIRST_SECONDS
                self.subscribed.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _listen(self) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self._channel)
            self.subscribed.set()
            log.info("event_subscription_ready", channel=self._channel)
            while True:
                # The client's health check pings an idle subscription, so a dead
                # connection raises here instead of waiting forever.
                message = await pubsub.get_message(timeout=1.0)
                if message is None or message.get("type") != "message":
                    continue
                try:
                    event = Event.decode(message["data"])
                except (ValueError, KeyError, TypeError):
                    log.warning("event_undecodable", channel=self._channel)
                    continue
                await self._deliver(event)


# Ended logins are announced on the hub by accounts (core), whatever else is enabled: a
# feature that holds connections per session (realtime's sockets) closes them on it.
SESSIONS_ENDED = "sessions.ended"
"""Internal: a user's login sessions ended; their sockets close. Never sent to clients."""


def sessions_ended(
    user_id: uuid.UUID,
    reason: str,
    *,
    only: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> Event:
    """The event that closes `user_id`'s sockets: of session `only`, or all but `keep`, or all."""
    data = {"reason": reason, "only": _text(only), "keep": _text(keep)}
    return Event(type=SESSIONS_ENDED, id=str(uuid.uuid4()), user_id=user_id, data=data)


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)
