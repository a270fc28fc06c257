from __future__ import annotations

import uuid

from keel.core.events import Event, EventHub
from keel.core.realtime import Close, Realtime, sessions_ended


def event(user_id: uuid.UUID | None, n: int = 0) -> Event:
    return Event(type="order.paid", id=str(n), user_id=user_id, data={})


async def test_a_slow_connection_loses_the_oldest_events_and_is_told() -> None:
    hub = EventHub()
    realtime = Realtime(hub, mailbox_size=3)
    user = uuid.uuid4()
    mailbox = realtime.connect(user)
    for n in range(10):
        await hub.publish(event(user, n))
    first, dropped = await mailbox.get()
    assert dropped == 7
    assert isinstance(first, Event)
    assert first.id == "7"
    rest = [await mailbox.get() for _ in range(2)]
    assert [(item.id, lost) for item, lost in rest if isinstance(item, Event)] == [
        ("8", 0),
        ("9", 0),
    ]


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
    assert isinstance(delivered, Event)
    assert delivered.id == "1"
    assert bobs.dropped == 0
    watched = [(await watcher.get())[0] for _ in range(2)]
    assert [item.id for item in watched if isinstance(item, Event)] == ["1", "2"]
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
    realtime.stop()
    await hub.publish(event(user, 2))
    assert mailbox.dropped == 0  # no longer subscribed


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
