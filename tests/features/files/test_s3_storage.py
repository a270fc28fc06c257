"""Files on S3, for real: moto's S3 server on loopback, spoken to over HTTP by obstore.

Every failure path checks the bucket itself (with boto3), not just the answer: a refused or
failed upload must leave no object, no unfinished multipart upload and no row behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.features.files.models import StoredFile
from keel.settings import Settings
from tests.conftest import MakeSettings
from tests.support.accounts import Account, signed_up
from tests.support.app import isolated_app, serve
from tests.support.assertions import assert_error_body
from tests.support.network import closed_port
from tests.support.servers import MOTO_ACCESS_KEY_ID, Bucket, moto_server, new_bucket

FILES = "/api/v1/files"
PREFIX = "tenant-a/uploads"
MIB = 1024 * 1024
BOUNDARY = "keel-s3-test-boundary-7f3a"
CHUNK = 16 * 1024  # well under the 64 KiB multipart allowance of the body-size middleware


def png(size: int) -> bytes:
    """`size` bytes that sniff as PNG: the signature, then incompressible noise."""
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + os.urandom(size - len(signature))


EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 5000  # a Windows executable: never allowed


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(moto_endpoint: str) -> Bucket:
    return new_bucket(moto_endpoint)


def s3_settings(make_settings: MakeSettings, bucket: Bucket, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "storage_url": f"s3://{bucket.name}/{PREFIX}",
        "storage_endpoint": bucket.endpoint,
        "storage_access_key_id": MOTO_ACCESS_KEY_ID,
        "storage_secret_access_key": "any-secret-moto-accepts",
    }
    values.update(overrides)
    return make_settings(**values)


def object_key(file_id: str) -> str:
    return f"{PREFIX}/files/{file_id}"


async def file_rows(connection: AsyncConnection) -> int:
    count = await connection.scalar(select(func.count()).select_from(StoredFile))
    return int(count or 0)


@pytest.fixture
async def s3_http(
    make_settings: MakeSettings, bucket: Bucket, db_connection: AsyncConnection
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on the moto bucket (default limits), with isolated database sessions."""
    async with serve(isolated_app(s3_settings(make_settings, bucket), db_connection)) as http:
        yield http


async def upload(
    http: httpx.AsyncClient,
    account: Account,
    content: bytes,
    *,
    filename: str = "picture.png",
    content_type: str = "image/png",
) -> httpx.Response:
    return await http.post(
        FILES, headers=account.headers, files={"file": (filename, content, content_type)}
    )


async def chunked_upload(
    http: httpx.AsyncClient,
    account: Account,
    content: bytes,
    *,
    pause_at: int | None = None,
    pause: Callable[[], Awaitable[None]] | None = None,
) -> httpx.Response:
    """The multipart body streamed without a Content-Length (Transfer-Encoding: chunked), so
    nothing refuses it up front; `pause` is awaited once `pause_at` bytes have been sent."""
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        for start in range(0, len(content), CHUNK):
            if pause is not None and start == pause_at:
                await pause()
            yield content[start : start + CHUNK]
        yield tail

    return await http.post(
        FILES,
        headers={
            **account.headers,
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
        content=body(),
    )


async def eventually(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    """Poll a blocking `check` (off the event loop) until it holds or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.05)
    return False


def assert_bucket_empty(bucket: Bucket) -> None:
    assert bucket.keys() == []
    assert bucket.unfinished_uploads() == []


# Happy paths ---------------------------------------------------------------------------------


async def test_upload_lands_in_the_bucket_and_downloads_whole_and_in_ranges(
    s3_http: httpx.AsyncClient, bucket: Bucket
) -> None:
    content = png(6 * MIB + 12345)  # more than one 5 MiB part: a real multipart upload
    account = await signed_up(s3_http)

    response = await upload(s3_http, account, content)

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["size"] == len(content)
    assert created["sha256"] == hashlib.sha256(content).hexdigest()
    assert created["content_type"] == "image/png"
    key = object_key(created["id"])
    assert bucket.keys() == [key]
    assert bucket.read(key) == content
    assert bucket.unfinished_uploads() == []

    url = f"{FILES}/{created['id']}"
    metadata = await s3_http.get(url, headers=account.headers)
    assert metadata.status_code == 200
    assert metadata.json() == created

    whole = await s3_http.get(f"{url}/content", headers=account.headers)
    assert whole.status_code == 200
    assert whole.headers["content-length"] == str(len(content))
    assert whole.content == content

    start, end = 5 * MIB - 10, 5 * MIB + 9  # a range across the boundary of the two parts
    ranged = await s3_http.get(
        f"{url}/content", headers={**account.headers, "Range": f"bytes={start}-{end}"}
    )
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes {start}-{end}/{len(content)}"
    assert ranged.content == content[start : end + 1]

    tail = await s3_http.get(f"{url}/content", headers={**account.headers, "Range": "bytes=-100"})
    assert tail.status_code == 206
    assert tail.content == content[-100:]


async def test_delete_removes_the_object_from_the_bucket(
    s3_http: httpx.AsyncClient, bucket: Bucket, db_connection: AsyncConnection
) -> None:
    account = await signed_up(s3_http)
    kept = (await upload(s3_http, account, png(5000))).json()
    doomed = (await upload(s3_http, account, png(7000))).json()
    assert sorted(bucket.keys()) == sorted([object_key(kept["id"]), object_key(doomed["id"])])

    deleted = await s3_http.delete(f"{FILES}/{doomed['id']}", headers=account.headers)

    assert deleted.status_code == 204
    assert bucket.keys() == [object_key(kept["id"])]
    assert await file_rows(db_connection) == 1
    gone = await s3_http.get(f"{FILES}/{doomed['id']}/content", headers=account.headers)
    assert_error_body(gone, 404, "NOT_FOUND")


async def test_direct_upload_to_a_presigned_url_then_complete(
    s3_http: httpx.AsyncClient, bucket: Bucket
) -> None:
    content = png(300_000)
    account = await signed_up(s3_http)
    announced = await s3_http.post(
        f"{FILES}/upload-url",
        headers=account.headers,
        json={"filename": "big.png", "content_type": "image/png", "size": len(content)},
    )
    assert announced.status_code == 201, announced.text
    target = announced.json()
    key = object_key(target["id"])
    assert target["method"] == "PUT"
    assert target["upload_url"].startswith(f"{bucket.endpoint}/{bucket.name}/{key}?")
    assert "X-Amz-Signature=" in target["upload_url"]

    async with httpx.AsyncClient() as outside:  # the client talks to S3, not to Keel
        put = await outside.put(target["upload_url"], content=content, headers=target["headers"])
    assert put.status_code == 200, put.text
    completed = await s3_http.post(f"{FILES}/{target['id']}/complete", headers=account.headers)

    assert completed.status_code == 200, completed.text
    body = completed.json()
    assert body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["content_type"] == "image/png"
    assert bucket.keys() == [key]
    download = await s3_http.get(f"{FILES}/{target['id']}/content", headers=account.headers)
    assert download.content == content
    again = await s3_http.post(f"{FILES}/{target['id']}/complete", headers=account.headers)
    assert again.status_code == 200  # completing twice is harmless
    assert again.json() == body


# Sad paths -----------------------------------------------------------------------------------


async def test_upload_over_the_limit_is_413_and_leaves_no_object_or_row(
    make_settings: MakeSettings, bucket: Bucket, db_connection: AsyncConnection
) -> None:
    settings = s3_settings(make_settings, bucket, max_upload_bytes=8192)
    async with serve(isolated_app(settings, db_connection)) as http:
        account = await signed_up(http)
        response = await upload(http, account, png(20_000))

    error = assert_error_body(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["details"] == {"max_bytes": 8192}
    assert_bucket_empty(bucket)
    assert await file_rows(db_connection) == 0


async def test_limit_hit_after_a_part_reached_s3_aborts_the_multipart_upload(
    make_settings: MakeSettings, bucket: Bucket, db_connection: AsyncConnection
) -> None:
    limit = 6 * MIB
    settings = s3_settings(make_settings, bucket, max_upload_bytes=limit)
    part_seen: list[bool] = []

    async def until_a_part_is_in_the_bucket() -> None:
        part_seen.append(await eventually(lambda: bucket.uploaded_parts() >= 1))

    async with serve(isolated_app(settings, db_connection)) as http:
        account = await signed_up(http)
        response = await chunked_upload(
            http,
            account,
            png(7 * MIB),
            pause_at=5 * MIB + 32 * CHUNK,  # a whole 5 MiB part is in storage's hands by now
            pause=until_a_part_is_in_the_bucket,
        )

    assert part_seen == [True], "no part reached S3 before the limit was crossed"
    error = assert_error_body(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["details"] == {"max_bytes": limit}  # the upload's limit, not the body's
    assert_bucket_empty(bucket)
    assert await file_rows(db_connection) == 0


async def test_refused_type_is_415_and_leaves_no_object(
    s3_http: httpx.AsyncClient, bucket: Bucket, db_connection: AsyncConnection
) -> None:
    account = await signed_up(s3_http)

    response = await upload(
        s3_http, account, EXE, filename="setup.exe", content_type="application/octet-stream"
    )

    assert_error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_bucket_empty(bucket)
    assert await file_rows(db_connection) == 0


async def test_complete_with_fewer_bytes_than_announced_is_422_and_deletes_the_object(
    s3_http: httpx.AsyncClient, bucket: Bucket, db_connection: AsyncConnection
) -> None:
    content = png(10_000)
    account = await signed_up(s3_http)
    target = (
        await s3_http.post(
            f"{FILES}/upload-url",
            headers=account.headers,
            json={"filename": "a.png", "content_type": "image/png", "size": len(content) + 1},
        )
    ).json()
    async with httpx.AsyncClient() as outside:
        put = await outside.put(target["upload_url"], content=content, headers=target["headers"])
    assert put.status_code == 200
    assert bucket.keys() == [object_key(target["id"])]

    completed = await s3_http.post(f"{FILES}/{target['id']}/complete", headers=account.headers)

    error = assert_error_body(completed, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["type"] == "size"
    assert bucket.keys() == []
    assert await file_rows(db_connection) == 0  # the pending row went with the object
    again = await s3_http.post(f"{FILES}/{target['id']}/complete", headers=account.headers)
    assert_error_body(again, 404, "NOT_FOUND")


async def test_complete_with_bytes_of_another_type_is_415_and_deletes_the_object(
    s3_http: httpx.AsyncClient, bucket: Bucket, db_connection: AsyncConnection
) -> None:
    account = await signed_up(s3_http)
    target = (
        await s3_http.post(
            f"{FILES}/upload-url",
            headers=account.headers,
            json={"filename": "a.png", "content_type": "image/png", "size": len(EXE)},
        )
    ).json()
    async with httpx.AsyncClient() as outside:
        put = await outside.put(target["upload_url"], content=EXE, headers=target["headers"])
    assert put.status_code == 200
    assert bucket.keys() == [object_key(target["id"])]

    completed = await s3_http.post(f"{FILES}/{target['id']}/complete", headers=account.headers)

    assert_error_body(completed, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert bucket.keys() == []
    assert await file_rows(db_connection) == 0


async def test_complete_before_anything_was_put_is_409_and_the_file_stays_invisible(
    s3_http: httpx.AsyncClient, bucket: Bucket
) -> None:
    account = await signed_up(s3_http)
    target = (
        await s3_http.post(
            f"{FILES}/upload-url",
            headers=account.headers,
            json={"filename": "a.png", "content_type": "image/png", "size": 1234},
        )
    ).json()

    completed = await s3_http.post(f"{FILES}/{target['id']}/complete", headers=account.headers)

    assert_error_body(completed, 409, "CONFLICT")
    assert bucket.keys() == []
    hidden = await s3_http.get(f"{FILES}/{target['id']}", headers=account.headers)
    assert_error_body(hidden, 404, "NOT_FOUND")


async def test_unreachable_storage_answers_503_not_500(
    make_settings: MakeSettings, bucket: Bucket, db_connection: AsyncConnection
) -> None:
    nowhere = f"http://127.0.0.1:{closed_port()}"
    settings = s3_settings(make_settings, bucket, storage_endpoint=nowhere)
    async with serve(isolated_app(settings, db_connection), raise_app_exceptions=False) as http:
        account = await signed_up(http)
        response = await upload(http, account, png(5000))

    error = assert_error_body(response, 503, "SERVICE_UNAVAILABLE")
    assert error["message"] == "File storage is unavailable"
    assert nowhere not in str(error)  # the backend's address stays in the log
    assert response.headers["retry-after"].isdigit()
    assert await file_rows(db_connection) == 0


async def test_a_bucket_that_does_not_exist_answers_503_not_500(
    make_settings: MakeSettings, bucket: Bucket, db_connection: AsyncConnection
) -> None:
    settings = s3_settings(make_settings, bucket, storage_url=f"s3://{bucket.name}-missing/x")
    async with serve(isolated_app(settings, db_connection), raise_app_exceptions=False) as http:
        account = await signed_up(http)
        response = await upload(http, account, png(5000))

    assert_error_body(response, 503, "SERVICE_UNAVAILABLE")
    assert bucket.keys() == []
    assert await file_rows(db_connection) == 0


async def test_download_while_storage_is_unreachable_answers_503(
    make_settings: MakeSettings, bucket: Bucket, db_connection: AsyncConnection
) -> None:
    reachable = s3_settings(make_settings, bucket)
    async with serve(isolated_app(reachable, db_connection)) as http:
        account = await signed_up(http)
        created = (await upload(http, account, png(5000))).json()
    unreachable = s3_settings(
        make_settings, bucket, storage_endpoint=f"http://127.0.0.1:{closed_port()}"
    )
    async with serve(isolated_app(unreachable, db_connection), raise_app_exceptions=False) as http:
        response = await http.get(f"{FILES}/{created['id']}/content", headers=account.headers)
        metadata = await http.get(f"{FILES}/{created['id']}", headers=account.headers)

    assert_error_body(response, 503, "SERVICE_UNAVAILABLE")
    assert metadata.status_code == 200  # the row is fine; only the bytes are out of reach
    assert bucket.keys() == [object_key(created["id"])]
