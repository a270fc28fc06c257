"""`PlainRoute` answers what FastAPI's own route answers, for endpoints that take nothing, and
refuses at start-up any endpoint that takes something from the request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Request
from pydantic import BaseModel

from keel.core.errors import ServiceUnavailableError
from keel.core.plain_route import PlainRoute, plain_get
from keel.core.routers import include_flat
from tests.support.app import mounted_routes, serve
from tests.support.assertions import assert_error_body


class Status(BaseModel):
    status: str = "ok"
    count: int = 2**63 - 1
    note: str = "nul\x00 and ünïcode"


class Narrow(BaseModel):
    status: str


class Wide(Narrow):
    secret: str = "must not leak"


def _app(route_class: type | None = None, *, flat: bool = False) -> FastAPI:
    router = APIRouter()
    options: dict[str, Any] = {"route_class_override": route_class} if route_class else {}

    async def status() -> Status:
        return Status()

    async def narrowed() -> Narrow:
        return Wide(status="fine")  # a subclass: only the response model's fields are sent

    async def created() -> Status:
        return Status(status="made")

    router.add_api_route("/status", status, methods=["GET"], **options)
    router.add_api_route("/narrowed", narrowed, methods=["GET"], **options)
    router.add_api_route("/created", created, methods=["GET"], status_code=201, **options)
    application = FastAPI()
    if flat:
        include_flat(application, router)  # the route is the app's own: its `app` answers
    else:
        application.include_router(router)  # included: its route handler answers
    return application


@pytest.mark.parametrize("flat", [False, True], ids=["included", "flat"])
@pytest.mark.parametrize("path", ["/status", "/narrowed", "/created"])
async def test_a_plain_route_answers_what_fastapis_route_answers(path: str, flat: bool) -> None:
    async with serve(_app()) as stock, serve(_app(PlainRoute, flat=flat)) as plain:
        expected, answered = await stock.get(path), await plain.get(path)
    assert answered.status_code == expected.status_code
    assert answered.content == expected.content
    assert answered.headers["content-type"] == expected.headers["content-type"]
    assert answered.headers["content-length"] == str(len(expected.content))
    assert "must not leak" not in answered.text


def test_its_openapi_operation_is_fastapis() -> None:
    assert _app(PlainRoute).openapi()["paths"] == _app().openapi()["paths"]


async def _takes_query(limit: int) -> Status:
    return Status()


def _dependency() -> int:
    return 1


async def _takes_dependency(value: Annotated[int, Depends(_dependency)]) -> Status:
    return Status()


async def _takes_request(request: Request) -> Status:
    return Status()


async def _takes_background(tasks: BackgroundTasks) -> Status:
    return Status()


def _sync_endpoint() -> Status:
    return Status()


@pytest.mark.parametrize(
    "endpoint",
    [_takes_query, _takes_dependency, _takes_request, _takes_background, _sync_endpoint],
)
def test_an_endpoint_that_takes_something_is_refused_at_start_up(
    endpoint: Callable[..., Any],
) -> None:
    router = APIRouter()
    with pytest.raises(TypeError, match="PlainRoute"):
        plain_get(router, "/refused")(endpoint)
    assert router.routes == []


def test_a_route_without_a_response_model_is_refused() -> None:
    async def anything() -> Status:
        return Status()

    with pytest.raises(TypeError, match="response model"):
        plain_get(APIRouter(), "/refused", response_model=None)(anything)


def test_a_dependency_of_the_router_is_refused_too() -> None:
    router = APIRouter(dependencies=[Depends(_dependency)])

    async def status() -> Status:
        return Status()

    with pytest.raises(TypeError, match="PlainRoute"):
        plain_get(router, "/status")(status)


async def test_dependencies_added_where_it_is_included_still_run() -> None:
    calls: list[str] = []

    async def counted() -> None:
        calls.append("ran")

    router = APIRouter()

    @plain_get(router, "/status")
    async def status() -> Status:
        return Status(status="included")

    application = FastAPI()
    application.include_router(router, prefix="/v1", dependencies=[Depends(counted)])
    async with serve(application) as http:
        response = await http.get("/v1/status")
    assert response.json()["status"] == "included"
    assert calls == ["ran"]


@pytest.mark.parametrize("flat", [False, True], ids=["included", "flat"])
async def test_an_error_the_endpoint_raises_reaches_the_apps_handlers(
    app: FastAPI, flat: bool
) -> None:
    router = APIRouter()

    @plain_get(router, "/_test/plain-down")
    async def down() -> Status:
        raise ServiceUnavailableError("Not now")

    if flat:
        include_flat(app, router)
    else:
        app.include_router(router)
    async with serve(app) as http:
        response = await http.get("/_test/plain-down")
    error = assert_error_body(response, 503, "SERVICE_UNAVAILABLE")
    assert error["message"] == "Not now"
    assert response.headers["x-request-id"] == error["request_id"]


async def test_health_is_a_plain_route_with_every_header_of_the_stack(
    client: httpx.AsyncClient,
) -> None:
    routes = dict(mounted_routes())
    response = await client.get("/health")
    assert isinstance(routes["/health"], PlainRoute)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert (await client.post("/health")).status_code == 405
    assert (await client.get("/health", params={"unexpected": "\x00"})).status_code == 200
