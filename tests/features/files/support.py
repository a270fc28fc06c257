"""Bytes that are (or pretend to be) real file types, and upload shortcuts."""

from __future__ import annotations

import httpx

from tests.support.accounts import Account

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
PDF = b"%PDF-1.7\n" + b"0" * 5000
EXE = b"MZ\x90\x00" + b"\x00" * 5000
CSV = "sku,name,description,price,currency,stock,is_active\nA-1,Äpfel,,100,EUR,1,true\n".encode()


async def upload(
    client: httpx.AsyncClient,
    account: Account,
    content: bytes = PNG,
    *,
    filename: str = "picture.png",
    content_type: str = "image/png",
    path: str = "/api/v1/files",
) -> httpx.Response:
    return await client.post(
        path,
        headers=account.headers,
        files={"file": (filename, content, content_type)},
    )


async def stored_keys(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/_test/storage")
    assert response.status_code == 200
    keys: list[str] = response.json()
    return keys
