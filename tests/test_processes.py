"""`tests.support.processes.server_process`: started when healthy, always stopped, loud when
the server dies during start-up. Against tiny real HTTP servers in their own processes."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from tests.support.network import free_port
from tests.support.processes import server_process

SERVER = """
import signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
if sys.argv[2] == "ignore-sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def command(port: int, mode: str = "polite") -> list[str]:
    return [sys.executable, "-c", SERVER, str(port), mode]


def test_yields_once_healthy_and_sigterm_ends_it_cleanly() -> None:
    port = free_port()
    with server_process(command(port), port=port, env={}) as served:
        assert httpx.get(f"{served.base}/health").status_code == 200
        assert served.stop() == 0
    assert served.process.returncode == 0


def test_the_server_is_stopped_when_the_block_fails() -> None:
    port = free_port()
    with pytest.raises(RuntimeError), server_process(command(port), port=port, env={}) as served:
        raise RuntimeError("the test failed")
    assert served.process.poll() is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{served.base}/health", timeout=1)


def test_a_server_that_ignores_sigterm_is_killed() -> None:
    port = free_port()
    started = time.monotonic()
    with server_process(
        command(port, "ignore-sigterm"), port=port, env={}, stop_seconds=0.5
    ) as served:
        pass
    assert served.process.returncode == -9  # SIGKILL, after the short grace
    assert time.monotonic() - started < 15


def test_a_server_that_exits_during_start_up_fails_with_its_output() -> None:
    crash = [sys.executable, "-c", "print('no database here'); raise SystemExit(3)"]
    with (
        pytest.raises(pytest.fail.Exception, match="no database here"),
        server_process(crash, port=free_port(), env={}, stdout=subprocess.PIPE),
    ):
        pass
