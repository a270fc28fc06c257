"""Uploads that never finish, against Keel served by uvicorn on loopback with local storage.

A client that goes away in the middle of a large upload, or sends a body that is not valid
multipart, must leave nothing behind: no staged or finished object under the storage
directory and no row. The server runs in its own thread and event loop, so these tests use
the live database (real commits) and look at it from the outside.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from keel.features.files.models import StoredFile
from keel.main import create_app
from keel.settings import Settings
from tests.conftest import MakeSettings
from tests.support.accounts import Account, signed_up
from tests.support.assertions import assert_error_body
from tests.support.databases import opened
from tests.support.servers import uvicorn_server

FILES = "/api/v1/files"
MIB = 1024 * 1024
BOUNDARY = "keel-disconnect-boundary-91c2"
DECLARED_BYTES = 50 * MIB
SENT_BYTES = 12 * MIB
STAGED_BYTES = 5 * MIB  # one storage part: the upload is certainly being written by then


def files_under(directory: Path) -> list[Path]:
    """Every file (staged or complete) below `directory`; empty directories do not count."""
    return sorted(path for path in directory.rglob("*") if path.is_file())


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


async def file_rows(settings: Settings) -> int:
    async with opened(settings.database_url) as database, database.engine.connect() as db:
        count = await db.scalar(select(func.count()).select_from(StoredFile))
    return int(count or 0)


def part_head(filename: str = "notes.txt", content_type: str = "text/plain") -> bytes:
    return (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()


def text_bytes(size: int) -> bytes:
    """`size` bytes of plain text (an allowed type, so the upload is not refused early)."""
    line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
    return (line * (size // len(line) + 1))[:size]


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def server_settings(
    make_settings: MakeSettings, live_settings: Settings, storage_dir: Path
) -> Settings:
    return make_settings(
        database_url=live_settings.database_url,
        storage_url=f"file://{storage_dir}",
        max_upload_bytes=100 * MIB,
    )


@pytest.fixture
def server(server_settings: Settings) -> Iterator[str]:
    with uvicorn_server(create_app(server_settings), name="keel-upload-server") as base_url:
        yield base_url


@pytest.fixture
async def account(server: str) -> Account:
    async with httpx.AsyncClient(base_url=server) as http:
        return await signed_up(http)


def open_upload(server: str, account: Account) -> socket.socket:
    """A raw connection with the request line, headers and part headers of a 50 MB upload."""
    port = int(server.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST {FILES} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {account.access_token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {DECLARED_BYTES}\r\n"
        "\r\n"
    ).encode()
    sock.sendall(head + part_head())
    return sock


def staged_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in files_under(directory))


def drop(sock: socket.socket, *, reset: bool) -> None:
    """Hang up: an orderly FIN, or a TCP reset (SO_LINGER 0) like a killed client."""
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "reset"])
async def test_client_vanishing_mid_upload_leaves_no_file_and_no_row(
    server: str,
    account: Account,
    server_settings: Settings,
    storage_dir: Path,
    reset: bool,
) -> None:
    sock = open_upload(server, account)
    try:
        await asyncio.to_thread(sock.sendall, text_bytes(SENT_BYTES))
        staged = await asyncio.to_thread(
            wait_for, lambda: staged_bytes(storage_dir) >= STAGED_BYTES, 20
        )
        assert staged, f"no upload was being written: {files_under(storage_dir)}"
    finally:
        drop(sock, reset=reset)

    cleaned = await asyncio.to_thread(wait_for, lambda: not files_under(storage_dir), 10)

    assert cleaned, f"left behind after the client went away: {files_under(storage_dir)}"
    assert await file_rows(server_settings) == 0
    async with httpx.AsyncClient(base_url=server) as http:  # and the server carries on
        health = await http.get("/health")
        after = await http.post(
            FILES,
            headers=account.headers,
            files={"file": ("ok.txt", b"still works\n", "text/plain")},
        )
    assert health.status_code == 200
    assert after.status_code == 201, after.text
    assert [path.name for path in files_under(storage_dir)] == [after.json()["id"]]


async def test_body_ending_without_the_closing_boundary_mid_upload_is_400_and_leaves_nothing(
    server: str, account: Account, server_settings: Settings, storage_dir: Path
) -> None:
    first = part_head() + text_bytes(STAGED_BYTES + MIB)
    last = text_bytes(4096)  # still file data: the closing boundary never comes
    staged: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        yield first
        staged.append(
            await asyncio.to_thread(wait_for, lambda: staged_bytes(storage_dir) >= STAGED_BYTES, 20)
        )
        yield last

    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        response = await http.post(
            FILES,
            content=body(),
            headers={
                **account.headers,
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Content-Length": str(len(first) + len(last)),  # the body ends right there
            },
        )

    assert staged == [True], "the upload was never being written to storage"
    error = assert_error_body(response, 400, "BAD_REQUEST")
    assert "ended before it was complete" in str(error["message"])
    assert files_under(storage_dir) == []
    assert await file_rows(server_settings) == 0


MALFORMED_BODIES = {
    "truncated-in-part-headers": (
        f"--{BOUNDARY}\r\nContent-Disposition: form-da".encode(),
        "ended before it was complete",
    ),
    "no-boundary-at-all": (b"just some bytes, not multipart at all\r\n" * 100, "malformed"),
    "header-without-colon": (
        f"--{BOUNDARY}\r\nthis is not a header\r\n\r\ndata".encode(),
        "malformed",
    ),
    "garbage-after-the-boundary": (
        f"--{BOUNDARY}XYZ\r\n".encode() + part_head()[len(BOUNDARY) + 4 :] + b"data",
        "malformed",
    ),
}


@pytest.mark.parametrize(
    ("body", "complaint"), MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys()
)
async def test_malformed_multipart_is_400_and_leaves_nothing(
    server: str,
    account: Account,
    server_settings: Settings,
    storage_dir: Path,
    body: bytes,
    complaint: str,
) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        response = await http.post(
            FILES,
            content=body,
            headers={
                **account.headers,
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            },
        )

    error = assert_error_body(response, 400, "BAD_REQUEST")
    assert complaint in str(error["message"])
    assert files_under(storage_dir) == []
    assert await file_rows(server_settings) == 0
