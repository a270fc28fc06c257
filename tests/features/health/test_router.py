"""/health, /ready and /metrics."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.core.readiness import run_checks
from keel.main import create_app
from tests.conftest import MakeSettings
from tests.support.app import serve
from tests.support.assertions import metric_value
from tests.support.databases import REDIS_URL
from tests.support.network import closed_port


async def test_health_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_readiness_reports_timeouts_and_failures() -> None:
    async def slow(_: float) -> None:
        await asyncio.sleep(5)

    async def broken(_: float) -> None:
        raise ConnectionRefusedError("nope")

    async def fine(_: float) -> None:
        return None

    results = await asyncio.wait_for(
        run_checks({"slow": slow, "broken": broken, "fine": fine}, within_seconds=0.1), timeout=2
    )
    assert results == {"slow": "timeout", "broken": "unavailable", "fine": "ok"}


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.get("/_test/conflict")
    await client.get("/nope/123")
    text = (await client.get("/metrics")).text
    assert metric_value(
        text, "http_requests_total", handler="/_test/conflict", status="409", method="GET"
    ) == pytest.approx(3)
    assert metric_value(text, "http_requests_total", handler="<unmatched>", status="404") >= 1
    assert "/nope/123" not in text
    assert re.search(r"^http_request_duration_seconds_bucket\{", text, re.M)


async def test_routes_under_an_included_prefix_keep_it(client: httpx.AsyncClient) -> None:
    """FastAPI applies `include_router` prefixes lazily; the template must still carry them."""
    user = "/api/v1/users/00000000-0000-4000-8000-000000000000"
    assert (await client.get(user)).status_code == 401
    assert (await client.post("/api/v1/auth/login")).status_code == 422
    text = (await client.get("/metrics")).text
    assert metric_value(
        text, "http_requests_total", handler="/api/v1/users/{user_id}", status="401"
    ) == pytest.approx(1)
    assert metric_value(
        text, "http_requests_total", handler="/api/v1/auth/login", status="422"
    ) == pytest.approx(1)
    assert 'handler="/users' not in text


async def test_metrics_count_requests_in_flight(client: httpx.AsyncClient) -> None:
    slow = asyncio.create_task(client.get("/_test/hold", params={"seconds": 0.5}))
    await asyncio.sleep(0.2)
    during = (await client.get("/metrics")).text
    await slow
    after = (await client.get("/metrics")).text
    assert metric_value(during, "http_requests_in_flight") == 1  # scrapes are not counted
    assert metric_value(after, "http_requests_in_flight") == 0


async def test_metrics_include_pool_gauges(client: httpx.AsyncClient) -> None:
    await client.get("/_test/db")
    text = (await client.get("/metrics")).text
    assert metric_value(text, "keel_db_pool_size") == 10
    assert "keel_db_pool_checked_out" in text
    assert "keel_db_pool_open" in text


async def test_metrics_endpoint_is_not_in_the_api_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/metrics" not in paths
    assert "/health" in paths
    assert "/ready" in paths


async def test_ready_reports_an_unreachable_redis(
    make_settings: MakeSettings, db_connection: AsyncConnection
) -> None:
    application = create_app(make_settings(redis_url=f"redis://127.0.0.1:{closed_port()}/0"))
    async with serve(application) as http:
        response = await http.get("/ready")
    assert response.status_code == 503
    assert response.json()["error"]["details"] == {
        "checks": {"database": "ok", "redis": "unavailable", "events": "unavailable"}
    }


@pytest.mark.skipif(not REDIS_URL, reason="needs KEEL_TEST_REDIS_URL")
async def test_ready_checks_a_configured_redis(make_settings: MakeSettings) -> None:
    application = create_app(make_settings(redis_url=REDIS_URL))
    async with serve(application) as http:
        # The event subscription is made in the background just after start-up; until it
        # is live the process is (correctly) not ready.
        for _ in range(100):
            response = await http.get("/ready")
            if response.status_code == 200:
                break
            await asyncio.sleep(0.05)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "events": "ok"},
    }
