"""`public_cache_route(namespace)`: a route answering a repeated anonymous page from the read
cache before FastAPI resolves a single dependency.

A cached public page is stored bytes, yet answering it through its endpoint still costs all
of FastAPI's request handling: each query parameter parsed into its model, the session, the
optional bearer, the pagination (about 30% of a cached catalog page, bench/README.md). This
route keeps the endpoint as it is and puts one more key in front of it: the path and raw query
string of an anonymous request the endpoint answered with a 200. The first such request goes
through the endpoint (validation, its own cache, the database) and its body is stored under
that key; the next one with the same bytes is answered from it directly.

What keeps it right:
- Only a request without an `Authorization` header takes this path. Whoever sends one, valid or
  not, goes through the endpoint: an admin sees inactive products, a bad token is a 401.
- Only answers are stored: a refused request (422, 401) raises in the endpoint, which then
  decides it again every time.
- The entry lives at the namespace's version read *before* the endpoint ran, so a write that
  commits meanwhile (and bumps the version) leaves it behind, never served.
- Keys are bounded (`MAX_QUERY_BYTES`; a longer query string is never stored) and the cache
  itself holds a bounded number of entries, so odd query strings cannot grow memory.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from keel.core.cache import ReadCache
from keel.core.pagination import ESTIMATED_HEADER, PageBody

MAX_QUERY_BYTES = 512
"""Longer query strings are answered by the endpoint alone (a real client's page, sort and
filters fit in far less)."""


def public_cache_route(namespace: str) -> type[APIRoute]:
    """A route class for a page endpoint whose anonymous answers live in `namespace`."""

    class PublicCacheRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            endpoint = super().get_route_handler()

            async def handle(request: Request) -> Response:
                cache: ReadCache | None = request.scope.get("state", {}).get("read_cache")
                query = request.scope.get("query_string", b"")
                if (
                    cache is None
                    or len(query) > MAX_QUERY_BYTES
                    or any(name == b"authorization" for name, _ in request.scope["headers"])
                ):
                    return await endpoint(request)
                key = f"raw:{request.scope['path']}?{query.decode('latin-1')}"
                version = await cache.version(namespace)
                stored = await cache.get(namespace, version, key)
                if stored is not None:
                    return PageBody.from_stored(stored).response()
                response = await endpoint(request)  # a refused request raises: nothing stored
                estimated = ESTIMATED_HEADER.lower() in response.headers
                page = PageBody(bytes(response.body), estimated=estimated)
                await cache.set(namespace, version, key, page.stored())
                return response

            return handle

    return PublicCacheRoute
