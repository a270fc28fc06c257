"""A server in its own process, for what a thread cannot show: signals, worker processes,
socket-level limits, a stdout nobody reads.

`tests.support.servers` runs servers in threads of the test process (coverage sees them); use
this only where the process boundary is the point. The block waits for /health, and the
server is stopped however the block ends: SIGTERM as an orchestrator would send it, then
SIGKILL if it has not exited in time, so no test leaves a server behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.support.network import free_port

STARTUP_SECONDS = 60  # two workers importing under coverage, on 2 CPUs
STOP_SECONDS = 20


@dataclass(frozen=True)
class ServerProcess:
    base: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = STOP_SECONDS) -> int:
        """SIGTERM and wait: the exit code (`subprocess.TimeoutExpired` if it will not stop)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def development_env(database: Path, **settings: str) -> dict[str, str]:
    """The test process's environment for a development server on its own SQLite file."""
    return {
        **os.environ,
        "KEEL_ENVIRONMENT": "development",
        "KEEL_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        **settings,
    }


@contextmanager
def server_process(
    command: Sequence[str | Path],
    *,
    port: int,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdout: int | IO[Any] = subprocess.DEVNULL,
    stop_seconds: float = STOP_SECONDS,
) -> Iterator[ServerProcess]:
    """Start `command` (which must listen on `port`), yield it once /health answers 200.

    stderr goes where stdout goes; with `stdout=subprocess.PIPE` a server that exits during
    start-up fails the test with its output.
    """
    process = subprocess.Popen(
        [str(part) for part in command],
        env=dict(env),
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.STDOUT,
    )
    server = ServerProcess(base=f"http://127.0.0.1:{port}", port=port, process=process)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.stop(stop_seconds)
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def keel_serve(tmp_path: Path, *, workers: int = 2) -> Iterator[str]:
    """`keel serve` with `workers` processes on a SQLite file in `tmp_path`: its base URL.

    PROMETHEUS_MULTIPROC_DIR is left unset because `keel serve` must set it up itself; the
    server must exit cleanly (0) on SIGTERM when the block ends.
    """
    port = free_port()
    env = development_env(tmp_path / "serve.db", KEEL_LOG_LEVEL="WARNING")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "keel", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    with server_process(
        command, port=port, env=env, cwd=tmp_path, stdout=subprocess.PIPE
    ) as served:
        yield served.base
        assert served.stop() == 0


def _wait_until_healthy(server: ServerProcess) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            output = server.process.stdout.read().decode() if server.process.stdout else ""
            pytest.fail(f"the server exited during start-up:\n{output}")
        try:
            if httpx.get(f"{server.base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"the server did not become healthy in {STARTUP_SECONDS} s")
