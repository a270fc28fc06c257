"""Fan-out of events to this process's WebSocket connections.

One `Realtime` per process subscribes to the event hub once and routes each event to the
mailboxes of the connections that may see it: the event's user, and admins who asked for
everything. A mailbox is bounded: a connection that reads slower than events arrive loses the
oldest ones and is told how many (`lagged`), so a slow client never costs unbounded memory.

Ended logins travel the same hub as `sessions.ended`, an internal event no client is sent:
each process closes its own sockets of those sessions (1008), so a logout, a password change,
a deactivation or a deletion served by one process ends the sockets held by every process.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from dataclasses import dataclass, field

from keel.core.events import Event, EventHub

POLICY_VIOLATION = 1008
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


@dataclass(frozen=True, slots=True)
class Close:
    """Tells a connection to close (server shutdown)."""

    code: int
    reason: str


@dataclass(eq=False)
class Mailbox:
    user_id: uuid.UUID
    session_id: uuid.UUID | None
    everyone: bool
    size: int
    dropped: int = 0
    _items: deque[Event | Close] = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, item: Event | Close) -> None:
        if isinstance(item, Event) and len(self._items) >= self.size:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    def has_items(self) -> bool:
        return bool(self._items)

    async def get(self) -> tuple[Event | Close, int]:
        """The next item and how many events were dropped just before it (then reset)."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        dropped, self.dropped = self.dropped, 0
        return self._items.popleft(), dropped


class Realtime:
    def __init__(self, hub: EventHub, mailbox_size: int) -> None:
        self._mailbox_size = mailbox_size
        self._by_user: dict[uuid.UUID, set[Mailbox]] = {}
        self._everyone: set[Mailbox] = set()
        self._unsubscribe = hub.subscribe(self._dispatch)

    @property
    def connections(self) -> int:
        return sum(len(boxes) for boxes in self._by_user.values())

    def connect(
        self,
        user_id: uuid.UUID,
        *,
        session_id: uuid.UUID | None = None,
        everyone: bool = False,
    ) -> Mailbox:
        mailbox = Mailbox(user_id, session_id, everyone, self._mailbox_size)
        self._by_user.setdefault(user_id, set()).add(mailbox)
        if everyone:
            self._everyone.add(mailbox)
        return mailbox

    def disconnect(self, mailbox: Mailbox) -> None:
        boxes = self._by_user.get(mailbox.user_id)
        if boxes is not None:
            boxes.discard(mailbox)
            if not boxes:
                del self._by_user[mailbox.user_id]
        self._everyone.discard(mailbox)

    async def _dispatch(self, event: Event) -> None:
        if event.type == SESSIONS_ENDED:
            self._close_sessions(event)
            return
        targets = set(self._everyone)
        if event.user_id is not None:
            targets.update(self._by_user.get(event.user_id, ()))
        for mailbox in targets:
            mailbox.put(event)

    def _close_sessions(self, event: Event) -> None:
        if event.user_id is None:
            return
        only, keep = event.data.get("only"), event.data.get("keep")
        reason = f"session ended ({event.data.get('reason', 'revoked')})"
        for mailbox in list(self._by_user.get(event.user_id, ())):
            session = None if mailbox.session_id is None else str(mailbox.session_id)
            if (only is None or session == only) and (keep is None or session != keep):
                mailbox.put(Close(POLICY_VIOLATION, reason))

    def close_all(self, code: int, reason: str) -> None:
        """Ask every connection to close (each sends its close frame itself)."""
        for boxes in self._by_user.values():
            for mailbox in boxes:
                mailbox.put(Close(code, reason))

    def stop(self) -> None:
        self._unsubscribe()
