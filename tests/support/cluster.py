"""A Keel cluster on loopback: `keel serve` and `keel worker` as real subprocesses.

Every process is `python -m keel ...` with the test process's environment (minus any KEEL_*
variable) plus the cluster's settings, so coverage measures it (`patch = ["subprocess"]` in
pyproject.toml) and nothing from the developer's shell leaks in. Each one writes JSON log lines
to a file of its own in the cluster's directory (also its working directory, so no `.env` of
the repository is read); failures quote the tails of those files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.network import free_port
from tests.support.redis_server import RedisServer

STARTUP_SECONDS = 60.0  # three processes importing Keel under coverage on a loaded 2-CPU box
STOP_SECONDS = 20.0
LOG_TAIL_CHARS = 4000


def keel_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without KEEL_* (and without a Prometheus directory that
    belongs to someone else), plus `settings` as KEEL_* variables."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KEEL_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({f"KEEL_{name.upper()}": value for name, value in settings.items()})
    return env


class KeelProcess:
    """One `python -m keel <arguments>` subprocess and its log file."""

    def __init__(
        self, name: str, arguments: list[str], env: Mapping[str, str], directory: Path
    ) -> None:
        self.name = name
        self.arguments = arguments
        self.env = dict(env)
        self.directory = directory
        self.log_path = directory / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "keel", *self.arguments],
                env=self.env,
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, f"{self.name} was never started"
        return self.process

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines (anything else, e.g. a traceback printed by Python, is skipped)."""
        records = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def describe(self) -> str:
        code = None if self.process is None else self.process.poll()
        pid = None if self.process is None else self.process.pid
        return f"--- {self.name} (pid {pid}, exit code {code}) ---\n" + self.log()[-LOG_TAIL_CHARS:]

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it is still running after STOP_SECONDS; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class ApiProcess(KeelProcess):
    """`keel serve --workers 1` on a free loopback port."""

    def __init__(self, name: str, env: Mapping[str, str], directory: Path) -> None:
        self.port = free_port()
        super().__init__(
            name, ["serve", "--port", str(self.port), "--workers", "1"], env, directory
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    api1: ApiProcess
    api2: ApiProcess
    worker: KeelProcess
    redis: RedisServer
    database_url: str
    directory: Path

    @property
    def apis(self) -> tuple[ApiProcess, ApiProcess]:
        return self.api1, self.api2

    def logs(self) -> str:
        return "\n".join(p.describe() for p in (self.api1, self.api2, self.worker))


def wait_ready(api: ApiProcess, seconds: float = STARTUP_SECONDS) -> None:
    """Until the API's /ready answers 200 (every backend, Redis and its events included)."""
    deadline = time.monotonic() + seconds
    last = "no answer"
    while True:
        if not api.running():
            pytest.fail(f"{api.name} exited before it was ready:\n{api.describe()}")
        try:
            response = httpx.get(f"{api.url}/ready", timeout=5)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        except httpx.TransportError as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            pytest.fail(f"{api.name} not ready after {seconds} s ({last}):\n{api.describe()}")
        time.sleep(0.1)


def wait_worker_ready(worker: KeelProcess, seconds: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while "worker_ready" not in worker.log():
        if not worker.running():
            pytest.fail(f"{worker.name} exited before it was ready:\n{worker.describe()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{worker.name} not ready after {seconds} s:\n{worker.describe()}")
        time.sleep(0.1)


@contextmanager
def keel_cluster(
    directory: Path, *, database_url: str, redis: RedisServer, settings: Mapping[str, str]
) -> Iterator[Cluster]:
    """Two API processes and one worker on `database_url` (already migrated) and `redis`;
    yields once all three are ready, stops every one of them afterwards."""
    env = keel_environment(
        {**settings, "database_url": database_url, "redis_url": redis.url, "log_json": "true"}
    )
    cluster = Cluster(
        api1=ApiProcess("api1", env, directory),
        api2=ApiProcess("api2", env, directory),
        worker=KeelProcess("worker", ["worker"], env, directory),
        redis=redis,
        database_url=database_url,
        directory=directory,
    )
    with ExitStack() as stack:
        for process in (cluster.api1, cluster.api2, cluster.worker):
            stack.callback(process.stop)  # stopped in reverse order, each even if one fails
            process.start()  # all three start at once: their imports overlap
        wait_ready(cluster.api1)
        wait_ready(cluster.api2)
        wait_worker_ready(cluster.worker)
        yield cluster
