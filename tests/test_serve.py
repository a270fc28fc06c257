"""`keel serve` as a real server: several worker processes, one consistent /metrics."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from subprocess import PIPE

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.support.assertions import metric_value
from tests.support.network import free_port
from tests.support.processes import development_env, server_process

REQUESTS = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = development_env(tmp_path / "serve.db", KEEL_LOG_LEVEL="WARNING")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # `keel serve` must set it up itself
    command = [sys.executable, "-m", "keel", "serve", "--port", str(port), "--workers", "2"]
    with server_process(command, port=port, env=env, cwd=tmp_path, stdout=PIPE) as served:
        yield served.base
        assert served.stop() == 0


def test_metrics_add_up_across_worker_processes(server: str) -> None:
    for _ in range(REQUESTS):
        # A new connection each time, so requests spread over both workers.
        with httpx.Client(base_url=server) as http:
            assert http.get("/ready").status_code == 200
    scrapes = []
    for _ in range(6):
        with httpx.Client(base_url=server) as http:
            scrapes.append(
                metric_value(http.get("/metrics").text, "http_requests_total", handler="/ready")
            )
    assert scrapes == [REQUESTS] * 6, "every worker must report the total of all workers"


def test_workers_answer_docs_and_errors(server: str) -> None:
    with httpx.Client(base_url=server) as http:
        docs = http.get("/docs")
        missing = http.get("/api/v1/missing")
    assert docs.status_code == 200
    assert "server" not in docs.headers  # uvicorn's `server: uvicorn` is not advertised
    assert missing.status_code == 404
    assert missing.json()["error"]["request_id"] == missing.headers["x-request-id"]


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
