"""`public_cache_route`: a repeated anonymous page is answered from the read cache without its
endpoint; anything that could change the answer still reaches the endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
import pytest
from cashews import Cache
from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel

from keel.core.cache import ReadCache
from keel.core.pagination import PageBody, page_route
from keel.core.public_cache import MAX_QUERY_BYTES, public_cache_route
from tests.support.app import serve

NAMESPACE = "things"


class Thing(BaseModel):
    name: str


class Served:
    """An app with one cached page route, the endpoint's calls and the cache it shares."""

    def __init__(self) -> None:
        backend = Cache()
        backend.setup("mem://?size=100")
        self.cache = ReadCache(backend, prefix="test")
        self.calls: list[str] = []
        self.estimated = False
        self.write_during_load = False
        router = APIRouter(prefix="/things")

        @page_route(router, Thing, "Things", route_class=public_cache_route(NAMESPACE))
        async def list_things(
            name: Annotated[str, Query(max_length=20)] = "a",
        ) -> PageBody:
            self.calls.append(name)
            if self.write_during_load:  # a write commits while this page is being built
                await self.cache.invalidate(NAMESPACE)
            body = {"items": [{"name": f"{name}{len(self.calls)}"}], "total": 1}
            return PageBody(json.dumps(body).encode(), estimated=self.estimated)

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, ReadCache]]:
            yield {"read_cache": self.cache}

        self.app = FastAPI(lifespan=lifespan)
        self.app.include_router(router)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Served, httpx.AsyncClient]]:
    state = Served()
    async with serve(state.app) as http:
        yield state, http


Fixture = tuple[Served, httpx.AsyncClient]


async def test_a_repeated_anonymous_page_is_the_stored_bytes(served: Fixture) -> None:
    state, http = served
    first = await http.get("/things", params={"name": "x"})
    second = await http.get("/things", params={"name": "x"})
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["content-type"] == "application/json"
    assert state.calls == ["x"]


async def test_another_query_string_is_another_entry(served: Fixture) -> None:
    state, http = served
    await http.get("/things", params={"name": "x"})
    other = await http.get("/things", params={"name": "y"})
    assert other.json()["items"] == [{"name": "y2"}]
    assert state.calls == ["x", "y"]


async def test_an_estimated_total_keeps_its_header_when_replayed(served: Fixture) -> None:
    state, http = served
    state.estimated = True
    first = await http.get("/things")
    replayed = await http.get("/things")
    assert first.headers["x-total-estimated"] == replayed.headers["x-total-estimated"] == "true"
    assert replayed.content == first.content
    assert len(state.calls) == 1


@pytest.mark.parametrize("authorization", ["Bearer not-a-token", "Basic eDp5", ""])
async def test_any_authorization_header_goes_to_the_endpoint(
    served: Fixture, authorization: str
) -> None:
    """An admin sees more and a bad token is a 401: neither may be answered from the
    anonymous entry, nor stored as it."""
    state, http = served
    await http.get("/things")
    for _ in range(2):
        await http.get("/things", headers={"Authorization": authorization})
    assert len(state.calls) == 3
    anonymous = await http.get("/things")
    assert anonymous.json()["items"] == [{"name": "a1"}]  # still the anonymous first answer


async def test_a_refused_request_is_never_stored(served: Fixture) -> None:
    state, http = served
    for _ in range(2):
        refused = await http.get("/things", params={"name": "x" * 21})
        assert refused.status_code == 422
    assert state.calls == []  # refused before the endpoint's body ran, both times
    assert (await state.cache.get(NAMESPACE, 0, "raw:/things?name=" + "x" * 21)) is None


async def test_an_invalidated_namespace_reaches_the_endpoint_again(served: Fixture) -> None:
    state, http = served
    await http.get("/things")
    await state.cache.invalidate(NAMESPACE)
    fresh = await http.get("/things")
    assert fresh.json()["items"] == [{"name": "a2"}]
    assert len(state.calls) == 2


async def test_a_write_during_the_load_leaves_the_stored_page_behind(served: Fixture) -> None:
    """The page was built from data older than the write: it is stored at the version read
    before the endpoint ran, which the write left behind, so the next request loads again."""
    state, http = served
    state.write_during_load = True
    await http.get("/things")
    state.write_during_load = False
    after = await http.get("/things")
    assert after.json()["items"] == [{"name": "a2"}]
    assert len(state.calls) == 2


async def test_an_oversized_query_string_is_answered_but_never_stored(served: Fixture) -> None:
    state, http = served
    padding = "&pad=" + "p" * MAX_QUERY_BYTES
    for _ in range(2):
        assert (await http.get(f"/things?name=x{padding}")).status_code == 200
    assert state.calls == ["x", "x"]


async def test_without_a_read_cache_the_endpoint_answers() -> None:
    router = APIRouter(prefix="/things")
    calls: list[int] = []

    @page_route(router, Thing, "Things", route_class=public_cache_route(NAMESPACE))
    async def list_things() -> PageBody:
        calls.append(1)
        return PageBody(b'{"items": [], "total": 0}')

    app = FastAPI()
    app.include_router(router)
    async with serve(app) as http:
        statuses = [(await http.get("/things")).status_code for _ in range(2)]
    assert statuses == [200, 200]
    assert len(calls) == 2
