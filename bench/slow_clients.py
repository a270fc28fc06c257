"""Slow and oversized clients against one `keel serve` worker (issue 10, item 5).

    .venv/bin/python bench/slow_clients.py            # this checkout
    .venv/bin/python bench/slow_clients.py --src DIR  # another checkout's src/ (before/after)

Two attacks, over raw sockets: four parallel 48 MiB headers to `/health` (the worker's peak
RSS, the slowest concurrent `/health`, what each sender got back), then 500 connections that
send half a header line and nothing more (how many are still open 12 s later, and 65 s later
if any were). SQLite, development mode, default limits; nothing else is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

BIG_HEADER = 48 * 1024 * 1024
PARTIAL = 500


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    args = parser.parse_args()
    port = 18000 + os.getpid() % 1000
    workdir = tempfile.mkdtemp()
    env = {
        **os.environ,
        "PYTHONPATH": args.src,
        "KEEL_ENVIRONMENT": "development",
        "KEEL_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/slow.db",
        "KEEL_LOG_LEVEL": "WARNING",
        "KEEL_RATE_LIMIT_ENABLED": "false",
    }
    command = [sys.executable, "-m", "keel", "serve", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(
        command, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)
        oversized_headers(base, port, server.pid)
        partial_heads(port)
    finally:
        server.terminate()
        server.wait(20)


def wait_healthy(base: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("keel serve did not start")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS")


def send_big(port: int) -> tuple[float, bytes]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * BIG_HEADER)
            sock.sendall(b"\r\n\r\n")
            answer = sock.recv(100)
        except OSError as error:
            answer = repr(error).encode()
    return time.monotonic() - started, answer[:40]


def oversized_headers(base: str, port: int, pid: int) -> None:
    before = rss_mib(pid)
    results: list[tuple[float, bytes]] = []
    peak, health = [before], [0.0]
    senders = [threading.Thread(target=lambda: results.append(send_big(port))) for _ in range(4)]
    for sender in senders:
        sender.start()
    while any(sender.is_alive() for sender in senders):
        started = time.monotonic()
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{base}/health", timeout=60)
        health.append(time.monotonic() - started)
        peak.append(rss_mib(pid))
        time.sleep(0.05)
    answers = [(round(seconds, 2), answer) for seconds, answer in results]
    print(
        f"4 x 48 MiB headers: RSS {before:.0f} -> peak {max(peak):.0f} MiB "
        f"(after {rss_mib(pid):.0f}); slowest /health {max(health):.2f} s; answers {answers}"
    )


def partial_heads(port: int) -> None:
    sockets = []
    for _ in range(PARTIAL):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        sockets.append(sock)
    waited = 0
    for total in (12, 65):
        time.sleep(total - waited)
        waited = total
        still_open = sum(1 for sock in sockets if is_open(sock))
        print(f"{PARTIAL} partial-header connections: {still_open} still open after {total} s")
        if not still_open:
            break
    for sock in sockets:
        sock.close()


def is_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


if __name__ == "__main__":
    main()
