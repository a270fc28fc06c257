from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.features.files.support import PNG, stored_keys, upload
from tests.support.accounts import Account, signed_up
from tests.support.assertions import assert_error_body


async def _uploaded(client: httpx.AsyncClient, **kwargs: Any) -> tuple[Account, str]:
    account = await signed_up(client)
    response = await upload(client, account, **kwargs)
    assert response.status_code == 201
    return account, response.json()["id"]


async def test_full_download_has_length_type_and_a_safe_disposition(
    client: httpx.AsyncClient,
) -> None:
    account, file_id = await _uploaded(client, filename="Grüße.png")
    response = await client.get(f"/api/v1/files/{file_id}/content", headers=account.headers)
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-length"] == str(len(PNG))
    assert response.headers["content-type"] == "image/png"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"Gr__e.png\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe.png"
    )


async def test_a_range_gives_206_with_exactly_those_bytes(client: httpx.AsyncClient) -> None:
    account, file_id = await _uploaded(client)
    response = await client.get(
        f"/api/v1/files/{file_id}/content", headers={**account.headers, "Range": "bytes=100-199"}
    )
    assert response.status_code == 206
    assert response.content == PNG[100:200]
    assert response.headers["content-range"] == f"bytes 100-199/{len(PNG)}"
    assert response.headers["content-length"] == "100"


async def test_a_suffix_range_gives_the_tail(client: httpx.AsyncClient) -> None:
    account, file_id = await _uploaded(client)
    response = await client.get(
        f"/api/v1/files/{file_id}/content", headers={**account.headers, "Range": "bytes=-10"}
    )
    assert response.status_code == 206
    assert response.content == PNG[-10:]


async def test_a_range_past_the_end_is_416(client: httpx.AsyncClient) -> None:
    account, file_id = await _uploaded(client)
    response = await client.get(
        f"/api/v1/files/{file_id}/content",
        headers={**account.headers, "Range": f"bytes={len(PNG)}-"},
    )
    assert_error_body(response, 416, "RANGE_NOT_SATISFIABLE")
    assert response.headers["content-range"] == f"bytes */{len(PNG)}"


HUGE = "9" * 4400  # past Python's 4,300-digit int limit: int() raised, a 500


@pytest.mark.parametrize(
    ("range_", "status", "body"),
    [
        (f"bytes={HUGE}-", 416, None),  # starts past the end
        (f"bytes=100-{HUGE}", 206, PNG[100:]),  # the rest of the file
        (f"bytes=-{HUGE}", 206, PNG),  # a tail longer than the file: all of it
        (f"bytes={'0' * 4400}1-2", 206, PNG[1:3]),  # leading zeros are still small numbers
    ],
)
async def test_positions_with_thousands_of_digits_are_answered_by_their_value(
    client: httpx.AsyncClient, range_: str, status: int, body: bytes | None
) -> None:
    account, file_id = await _uploaded(client)
    response = await client.get(
        f"/api/v1/files/{file_id}/content", headers={**account.headers, "Range": range_}
    )
    assert response.status_code == status, response.text
    if body is None:
        assert_error_body(response, 416, "RANGE_NOT_SATISFIABLE")
    else:
        assert response.content == body


async def test_a_range_request_is_never_compressed(client: httpx.AsyncClient) -> None:
    account, file_id = await _uploaded(client, content=b"a,b\n" * 2000, content_type="text/csv")
    response = await client.get(
        f"/api/v1/files/{file_id}/content",
        headers={**account.headers, "Range": "bytes=0-4999", "Accept-Encoding": "gzip"},
    )
    assert response.status_code == 206
    assert "content-encoding" not in response.headers
    assert response.content == (b"a,b\n" * 2000)[:5000]


async def test_someone_elses_file_is_not_found(client: httpx.AsyncClient) -> None:
    _, file_id = await _uploaded(client)
    stranger = await signed_up(client)
    for path in (f"/api/v1/files/{file_id}", f"/api/v1/files/{file_id}/content"):
        assert_error_body(await client.get(path, headers=stranger.headers), 404, "NOT_FOUND")
    response = await client.delete(f"/api/v1/files/{file_id}", headers=stranger.headers)
    assert_error_body(response, 404, "NOT_FOUND")
    assert len(await stored_keys(client)) == 1


async def test_an_admin_can_read_anyones_file(
    client: httpx.AsyncClient, admin: Account, db_connection: AsyncConnection
) -> None:
    _, file_id = await _uploaded(client)
    response = await client.get(f"/api/v1/files/{file_id}/content", headers=admin.headers)
    assert response.status_code == 200
    assert response.content == PNG


async def test_delete_removes_the_row_and_the_object(client: httpx.AsyncClient) -> None:
    account, file_id = await _uploaded(client)
    response = await client.delete(f"/api/v1/files/{file_id}", headers=account.headers)
    assert response.status_code == 204
    assert await stored_keys(client) == []
    gone = await client.get(f"/api/v1/files/{file_id}", headers=account.headers)
    assert_error_body(gone, 404, "NOT_FOUND")


async def test_an_unknown_file_is_not_found(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    response = await client.get(
        "/api/v1/files/00000000-0000-4000-8000-000000000000/content", headers=account.headers
    )
    assert_error_body(response, 404, "NOT_FOUND")


async def test_downloads_need_a_login(client: httpx.AsyncClient) -> None:
    _, file_id = await _uploaded(client)
    assert_error_body(await client.get(f"/api/v1/files/{file_id}/content"), 401, "UNAUTHORIZED")
