from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from keel.settings import Settings
from tests.conftest import MakeSettings
from tests.features.files.support import CSV, EXE, PDF, PNG, stored_keys, upload
from tests.support import routes
from tests.support.accounts import signed_up
from tests.support.app import isolated_app, serve
from tests.support.assertions import assert_error_body


def app_with(settings: Settings, db_connection: Any) -> Any:
    application = isolated_app(settings, db_connection)
    application.include_router(routes.router)
    return application


async def test_upload_stores_the_bytes_and_returns_metadata(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    response = await upload(client, account)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filename"] == "picture.png"
    assert body["size"] == len(PNG)
    assert body["content_type"] == "image/png"
    assert body["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert set(body) == {"id", "filename", "size", "content_type", "sha256", "created_at"}
    assert await stored_keys(client) == [f"files/{body['id']}"]
    content = await client.get(f"/api/v1/files/{body['id']}/content", headers=account.headers)
    assert content.content == PNG


async def test_metadata_is_readable_by_the_owner(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    created = (await upload(client, account)).json()
    response = await client.get(f"/api/v1/files/{created['id']}", headers=account.headers)
    assert response.status_code == 200
    assert response.json() == created


async def test_csv_declared_as_csv_is_stored_as_csv(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    response = await upload(client, account, CSV, filename="p.csv", content_type="text/csv")
    assert response.status_code == 201
    assert response.json()["content_type"] == "text/csv"


async def test_undeclared_type_is_taken_from_the_bytes(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    response = await upload(client, account, PDF, content_type="application/octet-stream")
    assert response.status_code == 201
    assert response.json()["content_type"] == "application/pdf"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("/abs/path/x.png", "x.png"),
        ("....", "file"),
    ],
)
async def test_path_traversal_and_control_characters_leave_the_name(
    client: httpx.AsyncClient, raw: str, expected: str
) -> None:
    account = await signed_up(client)
    response = await upload(client, account, filename=raw)
    assert response.status_code == 201
    assert response.json()["filename"] == expected


async def test_bytes_contradicting_the_declared_type_are_refused(
    client: httpx.AsyncClient,
) -> None:
    account = await signed_up(client)
    response = await upload(client, account, EXE, filename="cat.png", content_type="image/png")
    body = assert_error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "image/png" in body["message"]
    assert await stored_keys(client) == []


async def test_a_type_outside_the_allow_list_is_refused(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    response = await upload(client, account, EXE, filename="x.exe", content_type="")
    body = assert_error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "image/png" in body["details"]["allowed"]
    assert await stored_keys(client) == []


async def test_binary_without_a_known_signature_is_refused(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    response = await upload(client, account, b"\x00\x01\x02\xff" * 100, content_type="")
    assert_error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_an_empty_file_is_refused(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    response = await upload(client, account, b"")
    assert_error_body(response, 422, "VALIDATION_ERROR")
    assert await stored_keys(client) == []


async def test_the_allow_list_comes_from_settings(
    make_settings: MakeSettings, db_connection: Any
) -> None:
    settings = make_settings(upload_allowed_types=["image/png"])
    async with serve(app_with(settings, db_connection)) as http:
        account = await signed_up(http)
        assert (await upload(http, account)).status_code == 201
        response = await upload(http, account, PDF, filename="a.pdf", content_type="")
        assert_error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_a_file_over_the_limit_is_413_and_leaves_nothing(
    make_settings: MakeSettings, db_connection: Any
) -> None:
    settings = make_settings(max_upload_bytes=8192)
    async with serve(app_with(settings, db_connection)) as http:
        account = await signed_up(http)
        response = await upload(http, account, PNG + b"\x00" * 8192)
        body = assert_error_body(response, 413, "PAYLOAD_TOO_LARGE")
        assert body["details"]["max_bytes"] == 8192
        assert await stored_keys(http) == []
        listing = await http.get("/api/v1/files/x", headers=account.headers)
        assert listing.status_code == 404  # no listing endpoint; file ids are UUIDs in the path


async def test_a_chunked_file_over_the_limit_is_cut_off(
    make_settings: MakeSettings, db_connection: Any
) -> None:
    settings = make_settings(max_upload_bytes=8192)
    boundary = "keelboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    async def body() -> Any:
        yield head + PNG[:4096]
        for _ in range(40):
            yield b"\x00" * 4096
        yield f"\r\n--{boundary}--\r\n".encode()

    async with serve(app_with(settings, db_connection)) as http:
        account = await signed_up(http)
        response = await http.post(
            "/api/v1/files",
            headers={
                **account.headers,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            content=body(),
        )
        error = assert_error_body(response, 413, "PAYLOAD_TOO_LARGE")
        # The setting, not the setting plus the envelope allowance the body limit adds to it.
        assert error["details"] == {"max_bytes": 8192}
        assert error["message"] == "The file exceeds 8192 bytes"
        assert await stored_keys(http) == []


async def test_a_declared_length_over_the_limit_quotes_the_setting(
    make_settings: MakeSettings, db_connection: Any
) -> None:
    settings = make_settings(max_upload_bytes=8192)
    async with serve(app_with(settings, db_connection)) as http:
        account = await signed_up(http)
        response = await upload(http, account, PNG + b"\x00" * 200_000)
        error = assert_error_body(response, 413, "PAYLOAD_TOO_LARGE")
        assert error["details"] == {"max_bytes": 8192}
        assert error["message"] == "The file exceeds 8192 bytes"


async def test_a_boundary_longer_than_rfc_2046_allows_is_400(client: httpx.AsyncClient) -> None:
    """python-multipart refuses boundaries over 256 characters with an exception (a 500)."""
    account = await signed_up(client)
    for length in (71, 5000):
        boundary = "b" * length
        response = await client.post(
            "/api/v1/files",
            headers={
                **account.headers,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            content=f"--{boundary}\r\n".encode(),
        )
        error = assert_error_body(response, 400, "BAD_REQUEST")
        assert "boundary" in str(error["message"])
    assert await stored_keys(client) == []


async def test_a_file_of_exactly_the_limit_is_accepted(
    make_settings: MakeSettings, db_connection: Any
) -> None:
    settings = make_settings(max_upload_bytes=len(PNG))
    async with serve(app_with(settings, db_connection)) as http:
        account = await signed_up(http)
        assert (await upload(http, account)).status_code == 201


async def test_a_body_that_is_not_multipart_is_415(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    response = await client.post("/api/v1/files", headers=account.headers, json={"file": "x"})
    assert_error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_a_multipart_body_without_the_file_field_is_422(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    response = await client.post(
        "/api/v1/files", headers=account.headers, files={"other": ("a.png", PNG, "image/png")}
    )
    body = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert body["details"]["errors"][0]["loc"] == ["body", "file"]


async def test_a_truncated_multipart_body_is_400(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    boundary = "b0undary"
    response = await client.post(
        "/api/v1/files",
        headers={**account.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + PNG,
    )
    assert_error_body(response, 400, "BAD_REQUEST")
    assert await stored_keys(client) == []


async def test_uploading_needs_a_login(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/files", files={"file": ("a.png", PNG, "image/png")})
    assert_error_body(response, 401, "UNAUTHORIZED")
