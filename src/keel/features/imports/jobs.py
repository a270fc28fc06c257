"""The `import_products` job: read the uploaded CSV from storage and import it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from keel.core.config import settings_as
from keel.core.errors import NotFoundError
from keel.core.jobs.handlers import JobContext, PermanentJobError
from keel.features.files import service as files
from keel.features.imports.products import MalformedFileError, check_file, import_products
from keel.features.imports.settings import ImportsSettings

KIND = "import_products"


async def run_product_import(ctx: JobContext) -> dict[str, Any]:
    resources = ctx.resources
    settings = settings_as(ImportsSettings, resources.settings)
    file_id = uuid.UUID(str(ctx.payload["file_id"]))

    async def read() -> tuple[int, AsyncIterator[bytes]]:
        async with resources.database.read_sessionmaker() as session:
            try:
                return await files.read_active(session, resources.storage, file_id)
            except NotFoundError:
                raise PermanentJobError("The file to import no longer exists") from None

    size, chunks = await read()
    await ctx.progress(0, size)
    try:
        await check_file(chunks)
        _, chunks = await read()
        result = await import_products(
            resources.database,
            resources.cache,
            chunks,
            batch_size=settings.import_batch_size,
            max_errors=settings.import_max_errors,
            progress=lambda done: ctx.progress(done, size),
        )
    except MalformedFileError as exc:
        raise PermanentJobError(str(exc)) from None
    await ctx.progress(size, size)
    return result.as_dict()
