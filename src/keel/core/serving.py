"""How uvicorn serves Keel beyond its options: bounded request heads, a response's head and
body in one write, and WebSockets closed with 1001 on shutdown.

uvicorn's httptools protocol has no limit on the size of a request head and no deadline for
sending it: a 48 MiB header is buffered whole, and a client that sends half a header line and
then nothing keeps its connection (and a file descriptor) forever. `BoundedHttpToolsProtocol`
adds what a reverse proxy would enforce: a head larger than `KEEL_HTTP_MAX_HEADER_BYTES` is
answered 431 and the connection closed as soon as the excess arrives (so memory grows by at
most one read, not the whole header); a head not complete within
`KEEL_HTTP_HEADER_TIMEOUT_SECONDS` of the connection (or of its first byte, for the next request
on a kept-alive connection) closes the connection; and a body that stalls for
`KEEL_HTTP_BODY_TIMEOUT_SECONDS` between two chunks does too. The keep-alive idle timeout
stays uvicorn's own.

uvicorn writes a response's head and its body with two `transport.write` calls. uvloop up to
0.22 queued both and sent them with one `writev` at the end of the loop's turn; uvloop 0.23
sends each at once, so every small response costs two `write` syscalls and two TCP segments
(measured: about a third of a bare app's throughput on a trivial request; see
docs/decisions.md, "Serving"). The protocol hands each request's cycle a transport that holds
the head back until the first body chunk, or the end of the loop's turn for a response with
no body, and sends the two together: one syscall again, on any event loop.

When uvicorn shuts down (SIGTERM) it closes every open WebSocket itself before the app's
lifespan ends, with 1012 ("service restart"). Keel's contract is 1001 ("going away": the
client should reconnect, to any instance), so `keel serve` uses `GoingAwayWebSocketProtocol`,
which differs from uvicorn's own only in that code. In-flight HTTP requests are left to
uvicorn's graceful shutdown (`KEEL_GRACEFUL_SHUTDOWN_SECONDS`).

uvicorn offers permessage-deflate to every WebSocket client unless told not to;
`websocket_server_options` turns it on only with `KEEL_WS_COMPRESSION` (off by default).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from keel.core.config import CoreSettings, get_settings
from keel.core.request_id import REQUEST_ID_HEADER

GOING_AWAY = 1001
PROTOCOL = "keel.core.serving:GoingAwayWebSocketProtocol"
"""The import string `uvicorn.Config(ws=...)` takes (it must survive uvicorn's worker spawn)."""
HTTP_PROTOCOL = "keel.core.serving:BoundedHttpToolsProtocol"
"""The import string for `uvicorn.Config(http=...)`."""


def websocket_server_options(settings: CoreSettings) -> dict[str, Any]:
    """The WebSocket options `keel serve` gives uvicorn: Keel's protocol class, and
    permessage-deflate only when `KEEL_WS_COMPRESSION` is on. The one place where WebSocket
    settings become server options, so that another server would be mapped here too."""
    return {"ws": PROTOCOL, "ws_per_message_deflate": settings.ws_compression}


class GoingAwayWebSocketProtocol(WebSocketsSansIOProtocol):
    def shutdown(self) -> None:
        if self.close_sent or not self.handshake_complete:
            super().shutdown()
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": GOING_AWAY})
        self.conn.send_close(GOING_AWAY, "server shutting down")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()


@dataclass(frozen=True)
class HeadLimits:
    max_header_bytes: int
    header_timeout_seconds: float
    body_timeout_seconds: float


@lru_cache(maxsize=1)
def _limits_from_settings() -> HeadLimits:
    """Read once per worker process: uvicorn builds one protocol object per connection, and
    spawns workers by import string, so the settings are the environment's."""
    settings = get_settings()
    return HeadLimits(
        max_header_bytes=settings.http_max_header_bytes,
        header_timeout_seconds=settings.http_header_timeout_seconds,
        body_timeout_seconds=settings.http_body_timeout_seconds,
    )


# A body chunk up to this size is copied behind the held head and sent in one write; a larger
# one is written after the head, since copying it would cost more than the second syscall.
JOIN_MAX_BYTES = 64 * 1024


class HeadWithBodyTransport:
    """The connection's transport as one request/response cycle sees it: the cycle's first
    write (the response head) is held and goes out with the next one (the body), or on the
    loop's next turn if none comes in this one (a HEAD request, a slow first chunk)."""

    __slots__ = ("_first", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._first = True

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        held, self._held = self._held, None
        if held is None:
            self._transport.write(data)
        elif len(data) <= JOIN_MAX_BYTES:
            self._transport.write(held + data)
        else:
            self._transport.write(held)
            self._transport.write(data)

    def flush(self) -> None:
        """Send the held head, if any (the connection may have closed meanwhile)."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _HeadTooLargeError(Exception):
    """Raised from a parser callback to stop parsing a head that is over the limit."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size limit, a head deadline, a body-stall
    deadline, and the response head sent with its body (see the module docstring)."""

    limits: HeadLimits | None = None
    """Fixed limits (tests); None reads them from the settings."""

    _in_head = True
    _head_bytes = 0
    _head_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None

    def _limits(self) -> HeadLimits:
        return self.limits or _limits_from_settings()

    # Connection lifecycle

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's own, plus counting the head's bytes before they pile up in the parser."""
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except _HeadTooLargeError:
            self._refuse_head()
            return
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__cause__ or error.__context__, _HeadTooLargeError):
                self._refuse_head()
                return
            self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._head_bytes > self._limits().max_header_bytes:
            self._refuse_head()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_timers()
        super().handle_websocket_upgrade()

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # the next request on a kept-alive connection
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel(self._head_timer)
        self._head_timer = None
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._limits().max_header_bytes:
            raise _HeadTooLargeError
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = cast(
                asyncio.Transport, HeadWithBodyTransport(self.transport, self.loop)
            )
            if self.cycle.more_body:
                self._arm_body_timer()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm_body_timer()

    def on_message_complete(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = None
        # Whatever arrives next is the next request's head: count it from its first byte.
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    # Deadlines

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        seconds = self._limits().header_timeout_seconds
        self._head_timer = self._restart(self._head_timer, seconds, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self._head_bytes:
            self._write_error(408, "Request Timeout", "REQUEST_TIMEOUT", "Request head too slow")
        self.transport.close()

    def _arm_body_timer(self) -> None:
        seconds = self._limits().body_timeout_seconds
        self._body_timer = self._restart(self._body_timer, seconds, self._body_timed_out)

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.cycle is None or not self.cycle.more_body:
            return
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:
            # Keel is not reading yet (its buffer is full, or the client waits for
            # "100 Continue" until the handler asks for the body): the client is not late.
            self._arm_body_timer()
            return
        self.logger.info("Closing a connection whose request body stalled.")
        self.transport.close()

    def _cancel_timers(self) -> None:
        self._cancel(self._head_timer)
        self._cancel(self._body_timer)
        self._head_timer = self._body_timer = None

    def _restart(
        self, timer: asyncio.TimerHandle | None, seconds: float, expired: Callable[[], None]
    ) -> asyncio.TimerHandle:
        """A deadline starts again from now: the old timer (if any) is cancelled."""
        self._cancel(timer)
        return self.loop.call_later(seconds, expired)

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()

    # Responses written by the protocol itself

    def _refuse_head(self) -> None:
        self._cancel_timers()
        limit = self._limits().max_header_bytes
        self._write_error(
            431,
            "Request Header Fields Too Large",
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
            f"The request head is larger than {limit} bytes",
            {"max_bytes": limit},
        )
        self.transport.close()

    def _bad_request(self) -> None:
        self.logger.warning("Invalid HTTP request received.")
        self.send_400_response("Invalid HTTP request received.")

    def _write_error(
        self,
        status: int,
        phrase: str,
        code: str,
        message: str,
        details: dict[str, int] | None = None,
    ) -> None:
        """The SPEC error body, written straight to the socket (no application is running)."""
        if self.transport.is_closing():
            return
        request_id = str(uuid.uuid4())
        body = json.dumps(
            {
                "error": {
                    "code": code,
                    "message": message,
                    "details": details or {},
                    "request_id": request_id,
                }
            }
        ).encode()
        head = [f"HTTP/1.1 {status} {phrase}".encode()]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            REQUEST_ID_HEADER.lower().encode() + b": " + request_id.encode(),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
