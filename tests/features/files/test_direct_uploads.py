from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import httpx

from keel.core.models import utcnow
from keel.features.files.signing import sign_upload
from tests.conftest import TEST_JWT_SECRET
from tests.features.files.support import PDF, PNG, stored_keys
from tests.support.accounts import Account, signed_up
from tests.support.assertions import assert_error_body


async def _announce(
    client: httpx.AsyncClient, account: Account, size: int = len(PNG), ctype: str = "image/png"
) -> dict[str, str]:
    response = await client.post(
        "/api/v1/files/upload-url",
        headers=account.headers,
        json={"filename": "big.png", "content_type": ctype, "size": size},
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_direct_upload_then_complete(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    ticket = await _announce(client, account)
    assert ticket["method"] == "PUT"
    assert ticket["headers"] == {"Content-Type": "image/png"}
    put = await client.put(_path(ticket["upload_url"]), content=PNG, headers=ticket["headers"])
    assert put.status_code == 204
    done = await client.post(f"/api/v1/files/{ticket['id']}/complete", headers=account.headers)
    assert done.status_code == 200
    assert done.json()["sha256"] == hashlib.sha256(PNG).hexdigest()
    again = await client.post(f"/api/v1/files/{ticket['id']}/complete", headers=account.headers)
    assert again.json() == done.json()
    content = await client.get(f"/api/v1/files/{ticket['id']}/content", headers=account.headers)
    assert content.content == PNG


async def test_a_pending_upload_is_invisible(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    ticket = await _announce(client, account)
    response = await client.get(f"/api/v1/files/{ticket['id']}", headers=account.headers)
    assert_error_body(response, 404, "NOT_FOUND")


async def test_completing_before_uploading_is_a_conflict(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    ticket = await _announce(client, account)
    response = await client.post(f"/api/v1/files/{ticket['id']}/complete", headers=account.headers)
    assert_error_body(response, 409, "CONFLICT")


async def test_a_tampered_signature_is_403(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    ticket = await _announce(client, account)
    url = _path(ticket["upload_url"])
    tampered = url[:-3] + ("aaa" if not url.endswith("aaa") else "bbb")
    assert_error_body(await client.put(tampered, content=PNG), 403, "FORBIDDEN")
    assert await stored_keys(client) == []


async def test_an_expired_signature_is_403(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    ticket = await _announce(client, account)
    file_id = uuid.UUID(ticket["id"])
    expired = sign_upload(TEST_JWT_SECRET, file_id, utcnow() - timedelta(seconds=1))
    response = await client.put(f"/api/v1/files/{file_id}/upload?token={expired}", content=PNG)
    body = assert_error_body(response, 403, "FORBIDDEN")
    assert "expired" in str(body["message"])


async def test_a_signature_for_another_file_is_403(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    first = await _announce(client, account)
    second = await _announce(client, account)
    token = urlsplit(first["upload_url"]).query.removeprefix("token=")
    response = await client.put(f"/api/v1/files/{second['id']}/upload?token={token}", content=PNG)
    assert_error_body(response, 403, "FORBIDDEN")


async def test_an_access_token_is_not_an_upload_signature(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    ticket = await _announce(client, account)
    response = await client.put(
        f"/api/v1/files/{ticket['id']}/upload?token={account.access_token}", content=PNG
    )
    assert_error_body(response, 403, "FORBIDDEN")


async def test_more_bytes_than_announced_are_413(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    ticket = await _announce(client, account, size=100)
    response = await client.put(_path(ticket["upload_url"]), content=PNG)
    assert_error_body(response, 413, "PAYLOAD_TOO_LARGE")
    assert await stored_keys(client) == []


async def test_fewer_bytes_than_announced_fail_completion_and_are_deleted(
    client: httpx.AsyncClient,
) -> None:
    account = await signed_up(client)
    ticket = await _announce(client, account)
    await client.put(_path(ticket["upload_url"]), content=PNG[:-10])
    response = await client.post(f"/api/v1/files/{ticket['id']}/complete", headers=account.headers)
    assert_error_body(response, 422, "VALIDATION_ERROR")
    assert await stored_keys(client) == []
    gone = await client.post(f"/api/v1/files/{ticket['id']}/complete", headers=account.headers)
    assert_error_body(gone, 404, "NOT_FOUND")


async def test_bytes_of_another_type_fail_completion(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    ticket = await _announce(client, account, size=len(PDF))
    await client.put(_path(ticket["upload_url"]), content=PDF)
    response = await client.post(f"/api/v1/files/{ticket['id']}/complete", headers=account.headers)
    assert_error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert await stored_keys(client) == []


async def test_announcing_a_refused_type_or_size(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    bad_type = await client.post(
        "/api/v1/files/upload-url",
        headers=account.headers,
        json={"filename": "x.exe", "content_type": "application/x-msdownload", "size": 10},
    )
    assert_error_body(bad_type, 415, "UNSUPPORTED_MEDIA_TYPE")
    too_big = await client.post(
        "/api/v1/files/upload-url",
        headers=account.headers,
        json={"filename": "x.png", "content_type": "image/png", "size": 10**12},
    )
    assert_error_body(too_big, 413, "PAYLOAD_TOO_LARGE")


async def test_someone_else_cannot_complete_my_upload(client: httpx.AsyncClient) -> None:
    account = await signed_up(client)
    ticket = await _announce(client, account)
    await client.put(_path(ticket["upload_url"]), content=PNG)
    stranger = await signed_up(client)
    response = await client.post(f"/api/v1/files/{ticket['id']}/complete", headers=stranger.headers)
    assert_error_body(response, 404, "NOT_FOUND")
