"""`upload_route` and `client_may_leave`: how upload endpoints are declared and what a client
that hangs up mid-body gets."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI
from starlette.requests import ClientDisconnect

from keel.core.errors import BadRequestError, PayloadTooLargeError
from keel.features.files.multipart import FILE_FIELD_SCHEMA, client_may_leave, upload_route


def test_a_disconnect_during_the_upload_is_a_400() -> None:
    with pytest.raises(BadRequestError, match="went away during the upload"), client_may_leave():
        raise ClientDisconnect()


def test_other_errors_pass_through_unchanged() -> None:
    refused = PayloadTooLargeError("too big")
    with pytest.raises(PayloadTooLargeError) as raised, client_may_leave():
        raise refused
    assert raised.value is refused


async def test_the_route_answers_a_disconnect_with_a_400_and_keeps_its_name() -> None:
    router = APIRouter()

    @upload_route(router, "/up", "Upload", 201)
    async def receive_upload() -> dict[str, str]:
        raise ClientDisconnect()

    with pytest.raises(BadRequestError):
        await receive_upload()
    (route,) = router.routes
    assert route.name == "receive_upload"  # type: ignore[attr-defined]


def test_the_body_is_documented_as_a_file_field_and_the_alternatives() -> None:
    app = FastAPI()

    @upload_route(app.router, "/up", "Upload", 202, also={"application/json": {"type": "object"}})
    async def receive_upload() -> None: ...

    operation = app.openapi()["paths"]["/up"]["post"]
    assert operation["summary"] == "Upload"
    assert "202" in operation["responses"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"] == {
        "multipart/form-data": {"schema": FILE_FIELD_SCHEMA},
        "application/json": {"schema": {"type": "object"}},
    }
