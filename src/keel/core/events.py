"""The event hub: domain events (`order.paid`, `job.progress`, …) fanned out to subscribers.

In-process for now; the realtime issue carries events over Redis pub/sub and WebSockets behind
the same `publish`/`subscribe` interface. Publish from `after_commit`, so a rolled-back change
is never announced.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keel.core.logging import get_logger
from keel.core.models import utcnow

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    id: str
    user_id: uuid.UUID | None
    data: dict[str, Any]
    at: datetime = field(default_factory=utcnow)


Subscriber = Callable[[Event], Awaitable[None]]


class EventHub:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it again."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    async def publish(self, event: Event) -> None:
        """Deliver to every subscriber; one failing subscriber does not stop the others."""
        for subscriber in list(self._subscribers):
            try:
                await subscriber(event)
            except Exception:
                log.exception("event_subscriber_failed", event_type=event.type)
