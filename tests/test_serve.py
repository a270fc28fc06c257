"""`keel serve` as a real server: several worker processes, one consistent /metrics."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.assertions import metric_value
from tests.support.processes import keel_serve

REQUESTS = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with keel_serve(tmp_path_factory.mktemp("serve")) as base:
        yield base


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
