"""Which failures count as "backend unavailable" (503), and HTTPExceptions from anywhere."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, HTTPException
from sqlalchemy import exc as sa_exc

from keel.core.exception_handlers import is_backend_unavailable
from tests.support.app import serve
from tests.support.assertions import assert_error_body


class FakeDriverError(Exception):
    """Stands in for a DBAPI exception class (only its name and text are inspected)."""


class ConnectionDoesNotExistError(Exception):
    pass


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (sa_exc.TimeoutError("pool"), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (sa_exc.OperationalError("SELECT 1", {}, OSError("reset")), True),
        (sa_exc.OperationalError("x", {}, FakeDriverError("database is locked")), True),
        (sa_exc.InterfaceError("x", {}, ConnectionDoesNotExistError("gone")), True),
        (sa_exc.OperationalError("x", {}, FakeDriverError("could not connect to server")), True),
        (sa_exc.OperationalError("x", {}, FakeDriverError("no such table: users")), False),
        (sa_exc.IntegrityError("x", {}, FakeDriverError("duplicate key")), False),
        (ValueError("bad"), False),
    ],
)
def test_backend_unavailable_classification(error: BaseException, unavailable: bool) -> None:
    assert is_backend_unavailable(error) is unavailable


def test_invalidated_connection_is_unavailable() -> None:
    error = sa_exc.DBAPIError("x", {}, FakeDriverError("whatever"), connection_invalidated=True)
    assert is_backend_unavailable(error)


async def test_http_exceptions_from_routes_get_the_error_body(app: FastAPI) -> None:
    @app.get("/_test/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418, detail="I refuse to brew coffee")

    @app.get("/_test/auth")
    async def auth() -> None:
        raise HTTPException(status_code=401, detail="Not authenticated")

    @app.get("/_test/integrity")
    async def integrity() -> None:
        raise sa_exc.IntegrityError("INSERT secret", {}, FakeDriverError("duplicate"))

    async with serve(app) as http:
        teapot_response = await http.get("/_test/teapot")
        auth_response = await http.get("/_test/auth")
        integrity_response = await http.get("/_test/integrity")
    error = assert_error_body(teapot_response, 418, "IM_A_TEAPOT")
    assert error["message"] == "I refuse to brew coffee"
    assert_error_body(auth_response, 401, "UNAUTHORIZED")
    assert auth_response.headers["www-authenticate"] == "Bearer"
    assert_error_body(integrity_response, 500, "INTERNAL_ERROR")
    assert "secret" not in integrity_response.text


async def test_error_in_middleware_still_gets_the_error_body(app: FastAPI) -> None:
    class Exploding:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
            if scope["type"] == "http":
                raise RuntimeError("middleware bug")
            await self.inner(scope, receive, send)  # type: ignore[operator]

    app.add_middleware(Exploding)  # outermost: even the request-id layer never runs
    # Starlette re-raises after answering so the server can log it; the client got the body.
    async with serve(app, raise_app_exceptions=False) as http:
        response = await http.get("/health")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTERNAL_ERROR"
    assert response.json()["error"]["message"] == "Internal server error"
    assert "middleware bug" not in response.text
