"""SQL for file metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.repository import Rows
from keel.features.files.models import FileStatus, StoredFile

_rows = Rows(StoredFile)
get = _rows.get
add = _rows.add
delete = _rows.delete


async def activate(session: AsyncSession, stored: StoredFile, sha256: str) -> None:
    """A direct upload's object checked out: the file becomes visible, with its hash."""
    stored.sha256 = sha256
    stored.status = FileStatus.ACTIVE
    stored.upload_expires_at = None
    await session.flush()


def _abandoned(cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        StoredFile.status == FileStatus.PENDING,
        StoredFile.upload_expires_at < cutoff,
    )


async def any_abandoned(session: AsyncSession, cutoff: datetime) -> bool:
    """Whether a pending upload's URL expired before `cutoff`."""
    found = await session.scalar(select(StoredFile.id).where(_abandoned(cutoff)).limit(1))
    return found is not None


async def delete_abandoned(session: AsyncSession, cutoff: datetime, limit: int) -> list[str]:
    """Delete up to `limit` pending uploads that expired before `cutoff`; their storage keys.

    The condition is repeated in the DELETE itself, so a row completed in the meantime is
    kept (and its object with it)."""
    ids = select(StoredFile.id).where(_abandoned(cutoff)).limit(limit).scalar_subquery()
    result = await session.execute(
        sql_delete(StoredFile)
        .where(StoredFile.id.in_(ids), _abandoned(cutoff))
        .returning(StoredFile.storage_key)
    )
    return list(result.scalars())
