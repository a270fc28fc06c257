"""A response's head goes out with its body in one write (issue 12: uvloop 0.23 sends every
`transport.write` at once, so uvicorn's separate head and body writes cost two syscalls and two
TCP segments per response).

`HeadWithBodyTransport` wraps the connection's real transport; here it wraps a transport that
records what reaches it, on a real event loop. `tests/test_serve_limits.py` checks the same
protocol end to end, against `keel serve` over raw sockets.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from keel.core.serving import JOIN_MAX_BYTES, HeadWithBodyTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n"
BODY = b'{"status":"ok"}'


class RecordingTransport(asyncio.Transport):
    """What the socket would be sent, write by write."""

    def __init__(self) -> None:
        super().__init__(extra={"peername": ("127.0.0.1", 5000)})
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


@pytest.fixture
def raw() -> RecordingTransport:
    return RecordingTransport()


async def test_head_and_body_leave_in_one_write(raw: RecordingTransport) -> None:
    wrapped = HeadWithBodyTransport(raw, asyncio.get_running_loop())
    wrapped.write(HEAD)
    assert raw.writes == [], "the head waits for its body"
    wrapped.write(BODY)
    assert raw.writes == [HEAD + BODY]
    await next_turn()
    assert raw.writes == [HEAD + BODY], "the scheduled flush finds nothing left to send"


async def test_later_chunks_are_written_as_they_come(raw: RecordingTransport) -> None:
    wrapped = HeadWithBodyTransport(raw, asyncio.get_running_loop())
    for chunk in (HEAD, b"one", b"two"):
        wrapped.write(chunk)
    assert raw.writes == [HEAD + b"one", b"two"]


async def test_a_head_without_a_body_goes_out_on_the_next_turn(raw: RecordingTransport) -> None:
    wrapped = HeadWithBodyTransport(raw, asyncio.get_running_loop())
    wrapped.write(HEAD)  # a HEAD request, or a stream whose first chunk is slow
    await next_turn()
    assert raw.writes == [HEAD]
    wrapped.write(BODY)
    assert raw.writes == [HEAD, BODY], "a body after the flush is not held"


async def test_a_large_body_is_not_copied_behind_the_head(raw: RecordingTransport) -> None:
    wrapped = HeadWithBodyTransport(raw, asyncio.get_running_loop())
    large = b"x" * (JOIN_MAX_BYTES + 1)
    wrapped.write(HEAD)
    wrapped.write(large)
    assert raw.writes == [HEAD, large], "the order is kept; only the copy is skipped"


async def test_close_sends_the_held_head_first(raw: RecordingTransport) -> None:
    wrapped = HeadWithBodyTransport(raw, asyncio.get_running_loop())
    wrapped.write(HEAD)
    wrapped.close()
    assert raw.writes == [HEAD]
    assert raw.closed
    assert wrapped.is_closing()
    await next_turn()
    assert raw.writes == [HEAD], "nothing is written to a closed transport"


async def test_a_connection_closed_meanwhile_gets_nothing(raw: RecordingTransport) -> None:
    wrapped = HeadWithBodyTransport(raw, asyncio.get_running_loop())
    wrapped.write(HEAD)
    raw.close()  # the client went away before the turn ended
    await next_turn()
    assert raw.writes == []


async def test_everything_else_is_the_real_transport(raw: RecordingTransport) -> None:
    wrapped = HeadWithBodyTransport(raw, asyncio.get_running_loop())
    assert wrapped.get_extra_info("peername") == ("127.0.0.1", 5000)
    with pytest.raises(AttributeError):
        _ = wrapped.no_such_method
