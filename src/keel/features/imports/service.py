"""Starting imports: the CSV becomes a stored file first, then a job that reads it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.cache import ReadCache
from keel.core.database import Database
from keel.core.errors import UnsupportedMediaTypeError
from keel.core.jobs.models import Job
from keel.core.jobs.queue import JobQueue
from keel.core.storage import Storage
from keel.features.files import service as files
from keel.features.files.multipart import FilePart
from keel.features.imports.jobs import KIND
from keel.features.imports.products import ImportResult, Progress, check_file, import_products
from keel.features.imports.settings import ImportsSettings
from keel.features.users.models import User

CSV_TYPES = ["text/csv", "text/plain"]


async def import_uploaded_csv(
    session: AsyncSession,
    storage: Storage,
    jobs: JobQueue,
    admin: User,
    part: FilePart,
    *,
    max_bytes: int,
) -> Job:
    """Store the CSV as the admin's file (streamed, at most `max_bytes` as for any upload),
    then queue it.

    Any text passes the upload's type check: a file that is not UTF-8, or holds a NUL byte, is
    the job's to report (a failed job naming the offset, or a row error), not a 415."""
    stored = await files.upload(
        session, storage, admin, part, max_bytes=max_bytes, allowed_types=CSV_TYPES, any_text=True
    )
    return await jobs.enqueue(session, KIND, {"file_id": str(stored.id)}, owner_id=admin.id)


async def import_stored_csv(
    session: AsyncSession, jobs: JobQueue, admin: User, file_id: uuid.UUID
) -> Job:
    stored = await files.get_for(session, admin, file_id)
    if stored.content_type not in CSV_TYPES:
        raise UnsupportedMediaTypeError(
            f"Products are imported from CSV, not {stored.content_type}",
            details={"allowed": CSV_TYPES},
        )
    return await jobs.enqueue(session, KIND, {"file_id": str(file_id)}, owner_id=admin.id)


async def _file_chunks(path: Path, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    # Large reads: each is a hop to a worker thread and back.
    async with await anyio.open_file(path, "rb") as handle:
        while chunk := await handle.read(size):
            yield chunk


async def import_local_file(
    database: Database, settings: ImportsSettings, path: Path, progress: Progress
) -> ImportResult:
    """The import a job runs, on a file of this machine (`keel import-products`)."""
    cache = ReadCache.from_settings(settings)
    try:
        await check_file(_file_chunks(path))
        result = await import_products(
            database,
            cache,
            _file_chunks(path),
            batch_size=settings.import_batch_size,
            max_errors=settings.import_max_errors,
            progress=progress,
        )
    finally:
        await cache.close()
    await progress((await anyio.Path(path).stat()).st_size)
    return result
