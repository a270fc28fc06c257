"""FeatureRouter skips FastAPI's walk over its routes only for paths that cannot be its own;
`include_flat` gives the routes and document `include_router` gives, without the tree."""

from __future__ import annotations

import json
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query, WebSocket
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Match

from keel.core.routers import FeatureRouter, include_flat
from tests.support.app import serve


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


class Probe(BaseModel):
    status: str


def _root_router() -> APIRouter:
    router = APIRouter(tags=["operations"], responses={418: {"description": "A teapot"}})

    @router.get("/probe", response_model=Probe, summary="A probe")
    async def probe() -> Probe:
        """Shown as the operation's description."""
        return Probe(status="ok")

    @router.post("/probe/{name}", status_code=202, deprecated=True, include_in_schema=True)
    async def poke(name: str, limit: Annotated[int, Query(le=2**63 - 1)] = 1) -> dict[str, int]:
        return {name: limit}

    @router.get("/hidden", include_in_schema=False)
    async def hidden() -> str:
        return "hidden"

    return router


def _root_app(flat: bool) -> FastAPI:
    app = FastAPI(responses={500: {"description": "Unexpected"}})
    if flat:
        include_flat(app, _root_router())
    else:
        app.include_router(_root_router())
    return app


def test_a_flat_router_documents_exactly_what_an_included_one_does() -> None:
    assert json.dumps(_root_app(flat=True).openapi()) == json.dumps(_root_app(False).openapi())


async def test_a_flat_router_answers_as_an_included_one_and_is_no_node_of_a_tree() -> None:
    app = _root_app(flat=True)
    own = {route.path for route in app.router.routes if isinstance(route, APIRoute)}
    assert own == {"/probe", "/probe/{name}", "/hidden"}, "the app's own routes, not a node"
    async with serve(_root_app(False)) as included, serve(app) as flat:
        for method, path in [
            ("GET", "/probe"),
            ("POST", "/probe/a?limit=2"),
            ("POST", "/probe/a?limit=9223372036854775808"),  # 2^63: a 422, not a 500
            ("POST", "/probe/%00"),
            ("GET", "/hidden"),
            ("PUT", "/probe"),
            ("GET", "/nowhere"),
        ]:
            expected = await included.request(method, path)
            answered = await flat.request(method, path)
            assert (answered.status_code, answered.content) == (
                expected.status_code,
                expected.content,
            ), path
    assert expected.status_code == 404  # the last path: no route anywhere


def test_a_router_with_a_prefix_or_a_websocket_is_refused() -> None:
    with pytest.raises(ValueError, match="without a prefix"):
        include_flat(FastAPI(), APIRouter(prefix="/v1"))
    sockets = APIRouter()

    @sockets.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.close()

    with pytest.raises(TypeError, match="API routes only"):
        include_flat(FastAPI(), sockets)
