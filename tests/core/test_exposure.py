"""What production shows anonymous clients by default: no schema, no metrics, no server name.

These apps come from the real factory with production settings; they are not started (no
lifespan, so nothing connects to the placeholder database), which the routes under test do
not need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from keel.main import create_app
from keel.settings import load_settings
from tests.conftest import MakeSettings
from tests.support.assertions import assert_error_body
from tests.support.settings import SAFE_PRODUCTION

METRICS_TOKEN = "scrape-" + "m" * 24
PRODUCTION: dict[str, Any] = {
    **SAFE_PRODUCTION,
    "database_url": "postgresql+asyncpg://keel:pw@127.0.0.1:9/keel",  # nothing listens
    "redis_url": "redis://127.0.0.1:9/0",
}


async def client_for(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_settings(**{**PRODUCTION, **settings}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.example.com") as http:
        yield http


@pytest.fixture
async def production() -> AsyncIterator[httpx.AsyncClient]:
    async for http in client_for():
        yield http


@pytest.fixture
async def scraped() -> AsyncIterator[httpx.AsyncClient]:
    async for http in client_for(metrics_token=METRICS_TOKEN):
        yield http


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/metrics"])
async def test_production_publishes_no_schema_and_no_metrics_by_default(
    production: httpx.AsyncClient, path: str
) -> None:
    assert_error_body(await production.get(path), 404, "NOT_FOUND")
    assert (await production.get("/health")).status_code == 200


async def test_production_docs_can_be_turned_on() -> None:
    async for http in client_for(docs_enabled=True):
        assert (await http.get("/openapi.json")).status_code == 200
        assert (await http.get("/docs")).status_code == 200


async def test_production_metrics_answer_only_the_token(scraped: httpx.AsyncClient) -> None:
    anonymous = await scraped.get("/metrics")
    wrong = await scraped.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    for refused in (anonymous, wrong):
        assert_error_body(refused, 401, "UNAUTHORIZED")
        assert refused.headers["www-authenticate"] == "Bearer"
    # Prometheus scrapes each pod by its address: the token, not the Host, is the guard.
    right = await scraped.get(
        "http://10.1.2.3:8000/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert right.status_code == 200, right.text
    assert "http_requests_total" in right.text
    assert_error_body(await scraped.get("http://10.1.2.3:8000/api/v1/users/me"), 400, "BAD_REQUEST")


async def test_unguarded_metrics_are_held_to_the_host_allow_list(
    make_settings: MakeSettings,
) -> None:
    """Without a token /metrics is a page like any other: a foreign Host (DNS rebinding) is
    refused; the probes still answer any Host."""
    app = create_app(make_settings(allowed_hosts=["api.example.com"]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as http:
        assert_error_body(await http.get("/metrics"), 400, "BAD_REQUEST")
        assert (await http.get("/health")).status_code == 200
        ours = await http.get("http://api.example.com/metrics")
    assert ours.status_code == 200  # development: metrics on, and anonymous, as before


def test_production_refuses_open_or_weakly_guarded_metrics() -> None:
    assert load_settings(**PRODUCTION).problems() == []
    open_metrics = load_settings(**{**PRODUCTION, "metrics_enabled": True}).problems()
    assert open_metrics == [
        "KEEL_METRICS_ENABLED is on without KEEL_METRICS_TOKEN (anonymous /metrics)"
    ]
    weak = load_settings(**{**PRODUCTION, "metrics_token": "short"}).problems()
    assert weak == ["KEEL_METRICS_TOKEN is shorter than 16 bytes"]
