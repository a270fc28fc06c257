"""X-Request-ID: a valid incoming UUID is kept, anything else is replaced."""

from __future__ import annotations

import uuid

import httpx
import pytest


async def test_generates_a_uuid_when_absent(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert uuid.UUID(response.headers["x-request-id"]).version == 4


async def test_keeps_a_valid_incoming_uuid(client: httpx.AsyncClient) -> None:
    incoming = str(uuid.uuid4())
    response = await client.get("/health", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming


@pytest.mark.parametrize("bad", ["not-a-uuid", "1234", "x" * 300, "<script>"])
async def test_replaces_an_invalid_incoming_id(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": bad})
    assert response.headers["x-request-id"] != bad
    uuid.UUID(response.headers["x-request-id"])


async def test_each_response_has_exactly_one_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/missing")
    assert len(response.headers.get_list("x-request-id")) == 1
