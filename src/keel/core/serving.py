"""How uvicorn serves Keel beyond its options: WebSockets closed with 1001 on shutdown.

When uvicorn shuts down (SIGTERM) it closes every open WebSocket itself before the app's
lifespan ends, with 1012 ("service restart"). Keel's contract is 1001 ("going away": the
client should reconnect, to any instance), so `keel serve` uses this protocol class, which
differs from uvicorn's own only in that code. In-flight HTTP requests are left to uvicorn's
graceful shutdown (`KEEL_GRACEFUL_SHUTDOWN_SECONDS`).
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

GOING_AWAY = 1001
PROTOCOL = "keel.core.serving:GoingAwayWebSocketProtocol"
"""The import string `uvicorn.Config(ws=...)` takes (it must survive uvicorn's worker spawn)."""


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
