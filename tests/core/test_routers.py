"""FeatureRouter skips FastAPI's walk over its routes only for paths that cannot be its own."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI
from starlette.routing import Match

from keel.core.routers import FeatureRouter


def _app() -> FastAPI:
    things = FeatureRouter(prefix="/things")

    @things.get("")
    async def list_things() -> list[str]:
        return ["a"]

    @things.get("/{name}")
    async def read_thing(name: str) -> str:
        return name

    by_owner = FeatureRouter(prefix="/owners/{owner}")

    @by_owner.get("/items")
    async def owner_items(owner: str) -> str:
        return owner

    api = APIRouter(prefix="/api/v1")
    api.include_router(things)
    api.include_router(by_owner)
    app = FastAPI()
    app.include_router(api)
    return app


def _scope(path: str) -> dict[str, object]:
    return {"type": "http", "path": path, "method": "GET", "root_path": "", "headers": []}


def test_a_path_without_the_prefix_is_not_matched_at_all() -> None:
    router = FeatureRouter(prefix="/things")
    assert router.matches(_scope("/api/v1/users/me")) == (Match.NONE, {})


async def test_paths_under_the_prefix_still_route_through_every_include() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/api/v1/things")).json() == ["a"]
        assert (await client.get("/api/v1/things/b")).json() == "b"
        # A prefix with a parameter is never checked as text: it still matches.
        assert (await client.get("/api/v1/owners/ann/items")).json() == "ann"
        assert (await client.get("/api/v1/other")).status_code == 404
        assert (await client.get("/things")).status_code == 404  # the include's prefix counts
