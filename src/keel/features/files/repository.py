"""SQL for file metadata."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from keel.features.files.models import StoredFile


async def get(session: AsyncSession, file_id: uuid.UUID) -> StoredFile | None:
    return await session.get(StoredFile, file_id)


async def add(session: AsyncSession, stored: StoredFile) -> StoredFile:
    session.add(stored)
    await session.flush()
    return stored


async def delete(session: AsyncSession, stored: StoredFile) -> None:
    await session.delete(stored)
    await session.flush()
