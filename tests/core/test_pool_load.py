"""The fair pool under load, bounded in time: many more requests than connections are all
answered, and none waits out the pool timeout while others keep arriving (issue 12).

PostgreSQL only (KEEL_TEST_DATABASE_URL): the fair pool is what server databases get; the
app runs on its own pool (`live_settings`), as in production.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI

from keel.main import create_app
from keel.settings import Settings
from tests.support import routes
from tests.support.app import serve
from tests.support.databases import POSTGRES_URL

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="the fair pool is for server databases")

POOL_TIMEOUT_SECONDS = 3.0
DRAIN_TIMEOUT_SECONDS = 20.0
"""For the burst: with a fair queue the last of 200 requests waits for all before it, about
200 x the request's time / 2 connections (over 3 s under coverage on a busy 2-CPU machine,
where a 3 s timeout failed 87 of them). The steady-load test keeps the short timeout."""


def loaded_app(live_settings: Settings, timeout: float = POOL_TIMEOUT_SECONDS) -> FastAPI:
    settings = live_settings.model_copy(
        update={
            "db_pool_size": 2,
            "db_max_overflow": 0,
            "db_pool_timeout_seconds": timeout,
        }
    )
    application = create_app(settings)
    application.include_router(routes.router)
    return application


async def test_200_concurrent_requests_on_two_connections_are_all_answered(
    live_settings: Settings,
) -> None:
    async with serve(loaded_app(live_settings, DRAIN_TIMEOUT_SECONDS)) as http, asyncio.timeout(90):
        responses = await asyncio.gather(
            *(http.get("/_test/hold", params={"seconds": 0.005}) for _ in range(200))
        )
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 200, f"503s: {statuses.count(503)}"


async def test_none_waits_out_the_timeout_while_newcomers_keep_arriving(
    live_settings: Settings,
) -> None:
    """Clients in a loop, each sending its next request as soon as the last is answered: with
    an unfair queue a request can be overtaken by newcomers until its timeout (a 503)."""
    statuses: list[int] = []
    longest = 0.0

    async def client(http: httpx.AsyncClient, until: float) -> None:
        nonlocal longest
        while time.monotonic() < until:
            started = time.monotonic()
            response = await http.get("/_test/hold", params={"seconds": 0.002})
            longest = max(longest, time.monotonic() - started)
            statuses.append(response.status_code)

    async with serve(loaded_app(live_settings)) as http, asyncio.timeout(60):
        until = time.monotonic() + 6
        await asyncio.gather(*(client(http, until) for _ in range(40)))
    assert statuses
    assert set(statuses) == {200}, f"{statuses.count(503)} of {len(statuses)} answered 503"
    assert longest < POOL_TIMEOUT_SECONDS
