"""Direct uploads announced and never completed are swept, rows and objects, once their URL
has expired (plus the grace period); nothing else is touched. Real storage (memory:// and a
directory), a real committing database and the real periodic upkeep of the lifespan."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from keel.core.models import utcnow
from keel.features.files.models import StoredFile
from keel.settings import Settings
from tests.features.files.support import PNG, stored_keys
from tests.support.accounts import Account, signed_up
from tests.support.databases import opened
from tests.support.jobs import jobs_client


async def announce(http: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    response = await http.post(
        "/api/v1/files/upload-url",
        headers=account.headers,
        json={"filename": "big.png", "content_type": "image/png", "size": len(PNG)},
    )
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


async def put_bytes(http: httpx.AsyncClient, ticket: dict[str, Any]) -> None:
    parts = urlsplit(ticket["upload_url"])
    response = await http.put(f"{parts.path}?{parts.query}", content=PNG, headers=ticket["headers"])
    assert response.status_code == 204, response.text


async def expire(settings: Settings, *file_ids: str) -> None:
    """As if the URLs had been issued long ago (their lifetime is at least 30 s)."""
    async with opened(settings.database_url) as database, database.transaction() as session:
        await session.execute(
            update(StoredFile)
            .where(StoredFile.id.in_([uuid.UUID(i) for i in file_ids]))
            .values(upload_expires_at=utcnow() - timedelta(seconds=5))
        )


async def rows(settings: Settings) -> dict[str, str]:
    async with opened(settings.database_url) as database, database.sessionmaker() as session:
        found = await session.execute(select(StoredFile.id, StoredFile.status))
        return {str(file_id): status for file_id, status in found}


@pytest.mark.parametrize("storage", ["memory", "file"])
async def test_expired_pending_uploads_are_swept_with_their_objects(
    fast_jobs_settings: Settings, tmp_path: Path, storage: str
) -> None:
    settings = fast_jobs_settings.model_copy(
        update={
            "storage_url": "memory://" if storage == "memory" else f"file://{tmp_path}",
            "maintenance_seconds": 0.05,
            "upload_abandon_grace_seconds": 0,
        }
    )
    async with jobs_client(settings) as http:
        account = await signed_up(http)
        uploaded = await announce(http, account)  # bytes sent, never completed
        await put_bytes(http, uploaded)
        announced = await announce(http, account)  # nothing ever sent
        fresh = await announce(http, account)  # URL still valid: kept
        await put_bytes(http, fresh)
        done = await announce(http, account)  # completed: an ordinary file, kept
        await put_bytes(http, done)
        completed = await http.post(f"/api/v1/files/{done['id']}/complete", headers=account.headers)
        assert completed.status_code == 200, completed.text
        assert len(await stored_keys(http)) == 3

        await expire(settings, uploaded["id"], announced["id"], done["id"])
        for _ in range(200):
            if uploaded["id"] not in await rows(settings):
                break
            await asyncio.sleep(0.05)

        assert await rows(settings) == {fresh["id"]: "pending", done["id"]: "active"}
        assert sorted(await stored_keys(http)) == sorted(
            [f"files/{fresh['id']}", f"files/{done['id']}"]
        )
        content = await http.get(f"/api/v1/files/{done['id']}/content", headers=account.headers)
        assert content.content == PNG
        late = await http.post(f"/api/v1/files/{uploaded['id']}/complete", headers=account.headers)
        assert late.status_code == 404


async def test_the_grace_period_keeps_a_just_expired_upload(
    fast_jobs_settings: Settings,
) -> None:
    settings = fast_jobs_settings.model_copy(
        update={"maintenance_seconds": 0.05, "upload_abandon_grace_seconds": 3600}
    )
    async with jobs_client(settings) as http:
        account = await signed_up(http)
        ticket = await announce(http, account)
        await put_bytes(http, ticket)
        await expire(settings, ticket["id"])
        await asyncio.sleep(0.5)  # ten upkeep rounds
        assert await rows(settings) == {ticket["id"]: "pending"}
        assert await stored_keys(http) == [f"files/{ticket['id']}"]
