"""`PlainRoute`: an endpoint that reads nothing from the request, answered without FastAPI's
per-request handling.

FastAPI 0.165 handles every request alike: dependency resolution (with nothing to resolve
too), its telemetry lookups (with telemetry off too), the endpoint, the return value
validated against the response model and serialised through its field, a `JSONResponse`.
For the liveness probe that was a third of its in-process cost (bench/README.md, `health`),
on the request an orchestrator sends every few seconds to every process.

A `PlainRoute` checks once, at start-up, that its endpoint is a coroutine function taking
nothing from the request (no parameters, no dependencies, its router's included), and its
handler then awaits the endpoint and writes the return value, validated and dumped by the
response model's adapter, as JSON with the route's status code. It stays an `APIRoute`
behind FastAPI's own `request_response`: its OpenAPI operation, routing, its template in
logs and metrics, and the exception handlers (an error the endpoint raises reaches them as
from any route) are unchanged. Dependencies added where its router is included get FastAPI's
full handling instead.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, _effective_route_context_var
from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

JSON_MEDIA_TYPE = "application/json"


def _takes_something(dependant: Dependant) -> bool:
    return bool(
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.dependencies
        or dependant.request_param_name
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )


class PlainRoute(APIRoute):
    """See the module's docstring; construction refuses an endpoint that takes anything."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"{path}: a PlainRoute's endpoint is an `async def`")
        super().__init__(path, endpoint, **kwargs)
        if _takes_something(self.dependant):
            raise TypeError(
                f"{path}: a PlainRoute's endpoint takes nothing from the request; "
                "route this one with FastAPI's own APIRoute"
            )
        if self.response_model is None:
            raise TypeError(f"{path}: a PlainRoute needs a response model")
        # Where the route is the app's own (`include_flat`), Starlette calls `self.app`: the
        # answer is sent directly, without FastAPI's `request_response` (a `Request` and the
        # exit stacks that dependencies with `yield` need; this endpoint has none). An error
        # raised there reaches the app's handlers through its exception middleware.
        self.app = self._send_answer

    @functools.cached_property
    def _answer(self) -> Callable[[], Awaitable[Response]]:
        """The endpoint's answer as a response (the endpoint and model are known by now)."""
        endpoint = self.endpoint
        adapter: TypeAdapter[Any] = TypeAdapter(self.response_model)
        status_code = self.status_code or 200

        async def answer() -> Response:
            body = adapter.dump_json(adapter.validate_python(await endpoint()))
            return Response(body, status_code=status_code, media_type=JSON_MEDIA_TYPE)

        return answer

    async def _send_answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (await self._answer())(scope, receive, send)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        # FastAPI builds the handler again for each router the route is included in, with
        # what that inclusion adds: dependencies added there get FastAPI's own handling.
        included = _effective_route_context_var.get()
        if included is not None and _takes_something(included.dependant):
            return super().get_route_handler()
        answer = self._answer

        async def handle(_: Request) -> Response:
            return await answer()

        return handle


def plain_get(
    router: APIRouter, path: str, **options: Any
) -> Callable[[Callable[[], Awaitable[Any]]], Callable[[], Awaitable[Any]]]:
    """`@router.get(path, **options)` as a `PlainRoute`."""

    def register(endpoint: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        router.add_api_route(
            path, endpoint, methods=["GET"], route_class_override=PlainRoute, **options
        )
        return endpoint

    return register
