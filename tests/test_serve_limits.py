"""`keel serve` bounds the request head and slow clients (issue 10, item 5).

Against a real server process, over raw sockets: a client can send any bytes at any pace,
which no HTTP client library lets a test do.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.network import free_port
from tests.support.processes import development_env, server_process

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True)
class Server:
    base: str
    port: int
    pid: int

    def rss_bytes(self) -> int:
        """The server process's resident memory (one worker: the process itself)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the server's memory from /proc (Linux)")
    tmp_path = tmp_path_factory.mktemp("serve-limits")
    port = free_port()
    env = development_env(
        tmp_path / "serve.db",
        KEEL_LOG_LEVEL="WARNING",
        KEEL_HTTP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        KEEL_HTTP_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        KEEL_HTTP_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
        KEEL_RATE_LIMIT_ENABLED="false",
    )
    command = [sys.executable, "-m", "keel", "serve", "--port", str(port), "--workers", "1"]
    with server_process(command, port=port, env=env, cwd=tmp_path) as served:
        yield Server(base=served.base, port=port, pid=served.pid)


def read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, bool]:
    """Everything the server sends, and whether it closed the connection within `within` s."""
    sock.settimeout(within)
    received = b""
    deadline = time.monotonic() + within
    try:
        while chunk := sock.recv(65536):
            received += chunk
            sock.settimeout(max(0.01, deadline - time.monotonic()))
    except TimeoutError:
        return received, False
    except ConnectionResetError:
        pass
    return received, True


def oversized_head(header_bytes: int) -> bytes:
    return b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * header_bytes + b"\r\n\r\n"


def send_oversized(server: Server, header_bytes: int) -> tuple[float, bytes]:
    started = time.monotonic()
    with server.connect() as sock:
        # The server may refuse before the client finished sending: as it should.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(oversized_head(header_bytes))
        received, _ = read_until_closed(sock, within=10)
    return time.monotonic() - started, received


def test_normal_headers_still_work(server: Server) -> None:
    response = httpx.get(f"{server.base}/health", headers={"X-Fill": "a" * 8000})
    assert response.status_code == 200


def test_a_1_mib_header_is_refused_fast_with_bounded_memory(server: Server) -> None:
    before = server.rss_bytes()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: send_oversized(server, 1024 * 1024), range(4)))
    growth = server.rss_bytes() - before
    for seconds, received in results:
        assert received.startswith(b"HTTP/1.1 431 "), received[:200]
        assert b'"code": "REQUEST_HEADER_FIELDS_TOO_LARGE"' in received
        assert seconds < 2, f"refusing took {seconds:.2f} s"
    assert growth < 16 * 1024 * 1024, f"the server grew by {growth / 2**20:.1f} MiB"
    assert httpx.get(f"{server.base}/health").status_code == 200


def test_a_head_just_over_the_limit_in_one_read_is_refused(server: Server) -> None:
    _, received = send_oversized(server, MAX_HEADER_BYTES)
    assert received.startswith(b"HTTP/1.1 431 "), received[:200]


def test_partial_heads_are_closed_after_the_header_timeout(server: Server) -> None:
    sockets = [server.connect() for _ in range(50)]
    silent = server.connect()  # connects and never sends a byte
    try:
        for sock in sockets:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        time.sleep(HEADER_TIMEOUT + 1.0)
        outcomes = [read_until_closed(sock, within=0.5) for sock in [*sockets, silent]]
    finally:
        for sock in [*sockets, silent]:
            sock.close()
    still_open = sum(1 for _, closed in outcomes if not closed)
    assert still_open == 0, f"{still_open} of {len(outcomes)} partial connections are still open"
    assert outcomes[0][0].startswith(b"HTTP/1.1 408 ")
    assert outcomes[-1][0] == b"", "a connection that sent nothing is just closed"


def test_a_head_sent_slowly_but_in_time_is_served(server: Server) -> None:
    with server.connect() as sock:
        for part in (b"GET /health HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
            sock.sendall(part)
            time.sleep(HEADER_TIMEOUT / 4)
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_stalled_body_closes_the_connection(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"email": '
        )
        _, closed = read_until_closed(sock, within=BODY_TIMEOUT + 2.0)
    assert closed, "a body that stops arriving must not hold its connection open"


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(
    server: Server,
) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(5)
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        received, closed = read_until_closed(sock, within=HEADER_TIMEOUT + 2.0)
    assert closed
    assert received.startswith(b"HTTP/1.1 408 "), received[:100]


def read_response(sock: socket.socket, buffered: bytes) -> tuple[bytes, bytes, bytes]:
    """One response (status line and headers, body by Content-Length) and what follows it."""
    while b"\r\n\r\n" not in buffered:
        buffered += sock.recv(65536)
    head, _, rest = buffered.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return head, rest[:length], rest[length:]


def test_pipelined_requests_each_get_their_whole_answer_in_order(server: Server) -> None:
    """The response head is held back until its body (core/serving.py): answers of different
    sizes, one after another on one connection, still arrive whole and in order."""
    request = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with server.connect() as sock:
        sock.sendall(request % b"/health" + request % b"/no-such-path" + request % b"/health")
        first_head, first_body, rest = read_response(sock, b"")
        second_head, second_body, rest = read_response(sock, rest)
        third_head, third_body, rest = read_response(sock, rest)
    assert first_head.startswith(b"HTTP/1.1 200 ")
    assert second_head.startswith(b"HTTP/1.1 404 ")
    assert third_head.startswith(b"HTTP/1.1 200 ")
    assert first_body == third_body == b'{"status":"ok"}'
    assert b'"code":"NOT_FOUND"' in second_body.replace(b" ", b"")
    assert rest == b"", "nothing but the three answers"


def test_an_unknown_path_answers_the_spec_error_body_in_full(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /no-such-path HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head, body, _ = read_response(sock, b"")
    assert head.startswith(b"HTTP/1.1 404 ")
    assert b'"code":"NOT_FOUND"' in body.replace(b" ", b"")
