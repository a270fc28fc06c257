"""`keel serve` as a real server, seen from the realtime feature's WebSocket route.

It lives with the feature because a project generated without realtime has no `/api/v1/ws`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.support.processes import keel_serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with keel_serve(tmp_path_factory.mktemp("serve-ws")) as base:
        yield base


def test_keel_serve_declines_websocket_compression_by_default(server: str) -> None:
    """`keel serve` passes KEEL_WS_COMPRESSION (unset: off) to the server it runs."""
    url = server.replace("http", "ws", 1) + "/api/v1/ws"
    with ws_connect(url, compression="deflate", open_timeout=10) as ws:
        ws.send("not an auth message")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []
        assert ws.close_code == 1008
