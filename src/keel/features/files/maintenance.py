"""Upkeep of the files feature: direct uploads announced and never completed.

`upload-url` reserves a `pending` row before any byte arrives; a client that never calls
`complete` would leave the row (and possibly a partial or whole object) forever. Once the
URL has expired and the grace period (`KEEL_UPLOAD_ABANDON_GRACE_SECONDS`, for a PUT that
started just before expiry) has passed, the rows are deleted in one conditional statement,
and their objects after the commit. A `complete` racing the sweep either activated the row
first (the delete skips it) or finds it gone (404): never an active row without its object.
A crash between the commit and the object deletes leaves objects without rows, the cheap
side of the trade (`Storage.keys` finds them).
"""

from __future__ import annotations

from datetime import timedelta

from keel.core.config import settings_as
from keel.core.jobs.handlers import JobResources
from keel.core.logging import get_logger
from keel.core.models import utcnow
from keel.features.files import repository
from keel.features.files.settings import FilesSettings

log = get_logger(__name__)

BATCH = 500


async def sweep_abandoned_uploads(resources: JobResources) -> int:
    """Delete expired pending uploads, rows then objects; how many were deleted."""
    settings = settings_as(FilesSettings, resources.settings)
    grace = timedelta(seconds=settings.upload_abandon_grace_seconds)
    cutoff = utcnow() - grace
    database = resources.database
    async with database.read_sessionmaker() as session:  # an idle sweep never writes
        if not await repository.any_abandoned(session, cutoff):
            return 0
    async with database.transaction() as session:
        keys = await repository.delete_abandoned(session, cutoff, BATCH)
    for key in keys:
        await resources.storage.delete(key)
    log.info("abandoned_uploads_deleted", count=len(keys))
    return len(keys)
