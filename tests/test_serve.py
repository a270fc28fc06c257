"""`keel serve` as a real server: several worker processes, one consistent /metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.assertions import metric_value
from tests.support.network import free_port

REQUESTS = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {
        **os.environ,
        "KEEL_ENVIRONMENT": "development",
        "KEEL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "KEEL_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # `keel serve` must set it up itself
    process = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=20) == 0
        finally:
            process.kill()


def wait_until_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60  # two workers importing under coverage, on 2 CPUs
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"keel serve exited early:\n{output}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail("keel serve did not become healthy in 60 s")


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
