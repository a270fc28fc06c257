"""`keel worker` whose product import stops inside one batch and stays there until stopped.

Run as `python -m tests.support.held_worker worker` with HELD_WORKER_BATCH=N: batch N of an import
upserts its rows inside its open transaction, then the worker prints `HELD_MARKER` and waits
there (its event loop keeps running: lease renewal and signal handling are not disturbed). A
worker stopped while held is stopped in the middle of an import, and in the middle of a batch,
by construction, rather than by importing enough rows that the import outlasts a signal on a
machine of unknown speed. Everything else is the real `keel worker` command.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.cli import main
from keel.core.cache import ReadCache
from keel.features.catalog import service as catalog

BATCH_VARIABLE = "HELD_WORKER_BATCH"
HELD_MARKER = "held_worker_holds_batch"


def hold_at(batch: int) -> None:
    """Make the `batch`-th call of the catalog's `import_batch` (in this process) never return."""
    real_import_batch = catalog.import_batch
    calls = 0

    async def import_batch(
        session: AsyncSession, cache: ReadCache, rows: Sequence[Sequence[Any]]
    ) -> tuple[int, int]:
        nonlocal calls
        result = await real_import_batch(session, cache, rows)
        calls += 1
        if calls == batch:
            sys.stdout.write(f"{HELD_MARKER} {batch}\n")
            sys.stdout.flush()
            await asyncio.Event().wait()  # until the process is killed or the job cancelled
        return result

    catalog.import_batch = import_batch


if __name__ == "__main__":
    hold_at(int(os.environ[BATCH_VARIABLE]))
    main()  # the arguments are the CLI's: `python -m tests.support.held_worker worker`
