"""Fan-out of events to this process's WebSocket connections.

One `Realtime` per process subscribes to the event hub once and routes each event to the
mailboxes of the connections that may see it: the event's user, and admins who asked for
everything. A mailbox is bounded: a connection that reads slower than events arrive loses the
oldest ones and is told how many (`lagged`), so a slow client never costs unbounded memory.
Each event is encoded once, into the text every socket is sent (`Event.wire()`), however many
sockets receive it; the mailboxes hold that one string.

Ended logins travel the same hub as `sessions.ended`, an internal event no client is sent:
each process closes its own sockets of those sessions (1008), so a logout, a password change,
a deactivation or a deletion served by one process ends the sockets held by every process.
Those sockets close at once: events still queued for them are discarded, not delivered.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import deque
from dataclasses import dataclass

from keel.core.events import SESSIONS_ENDED, Event, EventHub

POLICY_VIOLATION = 1008
MAX_TICK_SECONDS = 1.0
"""The clock's resolution for heartbeats and token expiry (finer if a heartbeat is shorter)."""


@dataclass(frozen=True, slots=True)
class Close:
    """Tells a connection to close (an ended session, an expired token, server shutdown)."""

    code: int
    reason: str


GONE = Close(1006, "the client went away")
"""What a mailbox hands out once its client has gone: stop, there is no socket to close."""


class _Heartbeat:
    """The mailbox's signal that a heartbeat is due (built and stamped by the connection)."""

    __slots__ = ()


HEARTBEAT = _Heartbeat()

Delivery = str | Close | _Heartbeat
"""What `Mailbox.get` hands out: an event's wire text, the close, or a heartbeat."""


class Mailbox:
    """One connection's bounded queue of encoded events, plus its pending close and heartbeat.

    Events are held as the text `Realtime` encoded once for every socket. A close is kept apart
    from the events, so dropping the oldest event can never drop it: once a close is pending,
    later events are ignored, and `at_once` also discards the ones still queued (an ended
    session or an expired token sees nothing more). A heartbeat is a flag, sent before any
    queued event. Slots, one waiter future instead of an `asyncio.Event`: idle connections
    are the common case, so each holds as little as it can.
    """

    __slots__ = (
        "_beat",
        "_close",
        "_items",
        "_waiter",
        "beat_every",
        "dropped",
        "everyone",
        "expires_at",
        "next_beat",
        "session_id",
        "size",
        "user_id",
    )

    def __init__(
        self, user_id: uuid.UUID, session_id: uuid.UUID | None, everyone: bool, size: int
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.everyone = everyone
        self.size = size
        self.dropped = 0
        self._items: deque[str] | None = None  # made by the first event: a deque is 760 bytes
        self._close: Close | None = None
        self._beat = False
        self._waiter: asyncio.Future[None] | None = None
        self.beat_every = math.inf  # seconds between heartbeats; `Realtime.connect` sets these
        self.next_beat = math.inf  # in the event loop's clock, as is:
        self.expires_at = math.inf

    def due(self, now: float) -> None:
        """`Realtime`'s clock: close when the token has expired, flag a heartbeat when due."""
        if now >= self.expires_at:
            self.close(POLICY_VIOLATION, "token expired", at_once=True)
        elif now >= self.next_beat:
            self.next_beat = now + self.beat_every
            self.beat()

    def put(self, text: str) -> None:
        """Queue an event's wire text; when full, the oldest event is dropped and counted."""
        if self._close is not None:
            return
        items = self._items
        if items is None:
            items = self._items = deque()
        elif len(items) >= self.size:
            items.popleft()
            self.dropped += 1
        items.append(text)
        self._wake()

    def close(self, code: int, reason: str, *, at_once: bool = False) -> None:
        """Close after the queued events, or (`at_once`) instead of them; the first close wins."""
        if self._close is not None:
            return
        self._close = Close(code, reason)
        self._beat = False  # closing: no heartbeat is due any more
        if at_once:
            self._items = None
            self.dropped = 0
        self._wake()

    def hang_up(self) -> None:
        """The client has gone: nothing more will be sent, not even a close."""
        self._close = GONE
        self._items = None
        self._beat = False
        self._wake()

    def beat(self) -> None:
        """A heartbeat is due (`Realtime`'s clock calls this); not once closing."""
        if self._close is not None:
            return
        self._beat = True
        self._wake()

    def has_items(self) -> bool:
        return bool(self._items) or self._close is not None or self._beat

    async def get(self) -> tuple[Delivery, int]:
        """The next delivery and how many events were dropped just before it (then reset)."""
        while not self.has_items():
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        dropped, self.dropped = self.dropped, 0
        if self._beat:
            self._beat = False
            return HEARTBEAT, dropped
        if self._items:
            return self._items.popleft(), dropped
        assert self._close is not None
        return self._close, dropped

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Realtime:
    """Routes events to mailboxes, and keeps one clock for all of them: each tick (at most a
    second apart) closes the sockets whose token expired and flags the heartbeats due, instead
    of two timers per connection (about 1 KiB each socket would hold for its whole life)."""

    def __init__(self, hub: EventHub, mailbox_size: int) -> None:
        self._mailbox_size = mailbox_size
        self._by_user: dict[uuid.UUID, set[Mailbox]] = {}
        self._everyone: set[Mailbox] = set()
        self._unsubscribe = hub.subscribe(self._dispatch)
        self._tick_seconds = MAX_TICK_SECONDS
        self._clock: asyncio.TimerHandle | None = None

    @property
    def connections(self) -> int:
        return sum(len(boxes) for boxes in self._by_user.values())

    def connect(
        self,
        user_id: uuid.UUID,
        *,
        session_id: uuid.UUID | None = None,
        everyone: bool = False,
        heartbeat_seconds: float = math.inf,
        expires_in: float = math.inf,
    ) -> Mailbox:
        """A mailbox for a new connection, heartbeats every `heartbeat_seconds` and closed with
        1008 `token expired` after `expires_in` seconds (both to within a tick)."""
        mailbox = Mailbox(user_id, session_id, everyone, self._mailbox_size)
        loop = asyncio.get_running_loop()
        now = loop.time()
        mailbox.beat_every = heartbeat_seconds
        mailbox.next_beat = now + heartbeat_seconds
        mailbox.expires_at = now + max(expires_in, 0)
        self._by_user.setdefault(user_id, set()).add(mailbox)
        if everyone:
            self._everyone.add(mailbox)
        self._tick_seconds = min(self._tick_seconds, heartbeat_seconds)
        if self._clock is None:
            self._clock = loop.call_later(self._tick_seconds, self._tick)
        return mailbox

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for boxes in self._by_user.values():
            for mailbox in boxes:
                mailbox.due(now)
        self._clock = loop.call_later(self._tick_seconds, self._tick)

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
        own = self._by_user.get(event.user_id) if event.user_id is not None else None
        if not own and not self._everyone:
            return
        text = event.wire()  # once per event, whatever the number of sockets
        for mailbox in self._everyone:
            mailbox.put(text)
        if own:
            for mailbox in own:
                if not mailbox.everyone:  # an admin's socket watching everyone has it already
                    mailbox.put(text)

    def _close_sessions(self, event: Event) -> None:
        if event.user_id is None:
            return
        only, keep = event.data.get("only"), event.data.get("keep")
        reason = f"session ended ({event.data.get('reason', 'revoked')})"
        for mailbox in list(self._by_user.get(event.user_id, ())):
            session = None if mailbox.session_id is None else str(mailbox.session_id)
            if (only is None or session == only) and (keep is None or session != keep):
                mailbox.close(POLICY_VIOLATION, reason, at_once=True)

    def close_all(self, code: int, reason: str) -> None:
        """Ask every connection to close (each sends its close frame itself)."""
        for boxes in self._by_user.values():
            for mailbox in boxes:
                mailbox.close(code, reason)

    def stop(self) -> None:
        self._unsubscribe()
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None
