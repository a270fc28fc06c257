from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, ClassVar

from keel.core.events import Event, EventHub, sessions_ended
from keel.features.realtime.fanout import GONE, HEARTBEAT, Close, Delivery, Mailbox, Realtime


def event(user_id: uuid.UUID | None, n: int = 0) -> Event:
    return Event(type="order.paid", id=str(n), user_id=user_id, data={})


def event_id(delivery: Delivery) -> str:
    assert isinstance(delivery, str), delivery
    value: dict[str, Any] = json.loads(delivery)
    return str(value["id"])


class CountedEvent(Event):
    """An event that counts how often it is encoded for sockets."""

    __slots__ = ()
    encoded: ClassVar[int] = 0

    def wire(self) -> str:
        CountedEvent.encoded += 1
        return super().wire()


async def test_a_slow_connection_loses_the_oldest_events_and_is_told() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=3)
    user = uuid.uuid4()
    mailbox = realtime.connect(user)
    for n in range(10):
        await hub.publish(event(user, n))
    first, dropped = await mailbox.get()
    assert dropped == 7
    assert event_id(first) == "7"
    rest = [await mailbox.get() for _ in range(2)]
    assert [(event_id(item), lost) for item, lost in rest] == [("8", 0), ("9", 0)]
    assert not mailbox.has_items()


async def test_events_reach_their_user_and_admins_watching_everyone() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=10)
    alice, bob, admin = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    alices = realtime.connect(alice)
    bobs = realtime.connect(bob)
    watcher = realtime.connect(admin, everyone=True)
    await hub.publish(event(alice, 1))
    await hub.publish(event(None, 2))  # nobody's in particular: admins only
    delivered, _ = await alices.get()
    assert event_id(delivered) == "1"
    assert not bobs.has_items()
    watched = [(await watcher.get())[0] for _ in range(2)]
    assert [event_id(item) for item in watched] == ["1", "2"]
    assert realtime.connections == 3
    realtime.disconnect(bobs)
    realtime.disconnect(bobs)  # twice is harmless
    assert realtime.connections == 2


async def test_close_all_reaches_every_connection_after_its_events() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=1)
    user = uuid.uuid4()
    mailbox = realtime.connect(user)
    await hub.publish(event(user, 1))
    realtime.close_all(1001, "bye")
    assert [(await mailbox.get())[0] for _ in range(2)][1] == Close(1001, "bye")


async def test_a_stopped_realtime_receives_no_more_events() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=1)
    user = uuid.uuid4()
    mailbox = realtime.connect(user)
    realtime.stop()
    await hub.publish(event(user, 2))
    assert not mailbox.has_items()


def test_events_survive_the_wire() -> None:
    original = Event(type="job.progress", id="j", user_id=uuid.uuid4(), data={"done": 3})
    assert Event.decode(original.encode()) == original
    anonymous = Event(type="job.progress", id="j", user_id=None, data={})
    assert Event.decode(anonymous.encode().encode()) == anonymous


async def test_ended_sessions_close_only_their_sockets_and_reach_no_client() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=10)
    alice, admin = uuid.uuid4(), uuid.uuid4()
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    boxes = {s: realtime.connect(alice, session_id=s) for s in (first, second, third)}
    watcher = realtime.connect(admin, session_id=uuid.uuid4(), everyone=True)

    await hub.publish(sessions_ended(alice, "logout", only=first))
    closed, _ = await boxes[first].get()
    assert closed == Close(1008, "session ended (logout)")
    assert not boxes[second].has_items()
    assert not boxes[third].has_items()

    await hub.publish(sessions_ended(alice, "password_changed", keep=second))
    assert (await boxes[third].get())[0] == Close(1008, "session ended (password_changed)")
    assert not boxes[second].has_items()

    await hub.publish(sessions_ended(alice, "deactivated"))
    assert isinstance((await boxes[second].get())[0], Close)
    assert not watcher.has_items()  # admins watching everyone are not sent internal events


async def test_each_event_is_encoded_once_and_the_same_text_reaches_every_socket() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=10)
    alice = uuid.uuid4()
    own = [realtime.connect(alice) for _ in range(20)]
    admins = [realtime.connect(uuid.uuid4(), everyone=True) for _ in range(30)]
    CountedEvent.encoded = 0
    await hub.publish(CountedEvent(type="job.progress", id="j", user_id=alice, data={"done": 1}))
    assert CountedEvent.encoded == 1
    texts = [(await mailbox.get())[0] for mailbox in own + admins]
    assert all(text is texts[0] for text in texts)  # one string object, not 50 equal ones
    assert json.loads(str(texts[0])) == {
        "type": "job.progress",
        "id": "j",
        "at": json.loads(str(texts[0]))["at"],
        "data": {"done": 1},
    }


async def test_an_event_nobody_may_see_is_not_encoded_at_all() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=10)
    bobs = realtime.connect(uuid.uuid4())
    CountedEvent.encoded = 0
    await hub.publish(CountedEvent(type="order.paid", id="1", user_id=uuid.uuid4(), data={}))
    await hub.publish(CountedEvent(type="order.paid", id="2", user_id=None, data={}))
    assert CountedEvent.encoded == 0
    assert not bobs.has_items()


async def test_an_admin_watching_everyone_gets_their_own_event_once() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=10)
    admin = uuid.uuid4()
    watcher = realtime.connect(admin, everyone=True)
    await hub.publish(event(admin, 1))
    await hub.publish(event(admin, 2))
    assert [event_id((await watcher.get())[0]) for _ in range(2)] == ["1", "2"]
    assert not watcher.has_items()


def test_the_wire_text_is_the_spec_message_without_its_recipient() -> None:
    original = Event(type="order.paid", id="é", user_id=uuid.uuid4(), data={"n": "ü"})
    text = original.wire()
    assert json.loads(text) == original.message()
    assert "user_id" not in text
    assert "é" in text  # as Starlette's send_json writes it: compact, not ASCII-escaped
    assert ", " not in text


async def test_a_full_mailbox_never_drops_a_pending_close() -> None:
    """A slow consumer whose session ends while events keep coming is still closed."""
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=2)
    alice = uuid.uuid4()
    mailbox = realtime.connect(alice)
    realtime.close_all(1001, "bye")
    for n in range(5):
        await hub.publish(event(alice, n))
    assert await mailbox.get() == (Close(1001, "bye"), 0)


async def test_an_ended_session_closes_at_once_without_its_queued_events() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=10)
    alice, session = uuid.uuid4(), uuid.uuid4()
    mailbox = realtime.connect(alice, session_id=session)
    for n in range(12):
        await hub.publish(event(alice, n))
    await hub.publish(sessions_ended(alice, "logout"))
    await hub.publish(event(alice, 99))  # after the close: never sent
    assert await mailbox.get() == (Close(1008, "session ended (logout)"), 0)


async def test_the_first_close_wins() -> None:
    mailbox = Mailbox(uuid.uuid4(), None, everyone=False, size=5)
    mailbox.close(1008, "token expired", at_once=True)
    mailbox.close(1001, "server shutting down")
    assert await mailbox.get() == (Close(1008, "token expired"), 0)


async def test_a_heartbeat_goes_before_queued_events_and_not_after_a_hang_up() -> None:
    mailbox = Mailbox(uuid.uuid4(), None, everyone=False, size=5)
    mailbox.put("first")
    mailbox.beat()
    assert await mailbox.get() == (HEARTBEAT, 0)
    assert await mailbox.get() == ("first", 0)
    mailbox.put("second")
    mailbox.beat()
    mailbox.hang_up()
    assert await mailbox.get() == (GONE, 0)  # the client went: nothing else, not even a close
    mailbox.put("third")
    assert await mailbox.get() == (GONE, 0)


async def test_a_waiting_connection_wakes_for_an_event_and_stays_asleep_otherwise() -> None:
    mailbox = Mailbox(uuid.uuid4(), None, everyone=False, size=5)
    waiting = asyncio.create_task(mailbox.get())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    mailbox.put("hello")
    assert await asyncio.wait_for(waiting, 1) == ("hello", 0)
    cancelled = asyncio.create_task(mailbox.get())
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    mailbox.put("after a cancelled wait")  # a cancelled waiter must not break the next one
    assert await asyncio.wait_for(mailbox.get(), 1) == ("after a cancelled wait", 0)


async def test_one_clock_flags_heartbeats_and_closes_expired_tokens_at_once() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=10)
    alice = uuid.uuid4()
    beating = realtime.connect(alice, heartbeat_seconds=0.05)
    expiring = realtime.connect(alice, heartbeat_seconds=0.05, expires_in=0.12)
    await hub.publish(event(alice, 1))
    assert event_id((await beating.get())[0]) == "1"
    assert await asyncio.wait_for(beating.get(), 1) == (HEARTBEAT, 0)
    assert await asyncio.wait_for(beating.get(), 1) == (HEARTBEAT, 0)  # and again
    await asyncio.sleep(0.2)
    # The expired socket is closed without the event still queued for it.
    assert await expiring.get() == (Close(1008, "token expired"), 0)
    realtime.stop()


async def test_a_connection_without_a_heartbeat_or_expiry_is_never_flagged() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=10)
    quiet = realtime.connect(uuid.uuid4())
    realtime.connect(uuid.uuid4(), heartbeat_seconds=0.02)  # makes the clock tick fast
    await asyncio.sleep(0.1)
    assert not quiet.has_items()
    realtime.stop()


async def test_a_stopped_clock_flags_nothing_more() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=10)
    mailbox = realtime.connect(uuid.uuid4(), heartbeat_seconds=0.02)
    realtime.stop()
    await asyncio.sleep(0.1)
    assert not mailbox.has_items()
