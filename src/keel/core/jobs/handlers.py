"""What a job kind is, and how it talks back to the runner.

A handler is `async def handler(ctx: JobContext) -> dict | None`. It may run more than
once (a retry, or a worker killed mid-way), so it must be safe to repeat. It reports
progress with `await ctx.progress(done, total)`, which is also where a cancellation request
is noticed; it raises `PermanentJobError` for a failure that no retry can fix. Any other
exception is treated as transient and retried with backoff.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keel.core.cache import ReadCache
    from keel.core.config import CoreSettings
    from keel.core.database import Database
    from keel.core.events import EventHub
    from keel.core.storage import Storage
    from keel.core.tracing import Tracing


class PermanentJobError(Exception):
    """The job cannot succeed however often it is tried (bad input); fail it now."""


class JobCancelledError(Exception):
    """Raised at a checkpoint when cancellation was requested; the runner marks it cancelled."""


@dataclass(frozen=True, slots=True)
class JobResources:
    """What handlers may use: the same resources the API process holds."""

    settings: CoreSettings
    database: Database
    storage: Storage
    cache: ReadCache
    events: EventHub
    tracing: Tracing | None = None


ProgressReporter = Callable[[int, int | None], Awaitable[None]]

Maintenance = Callable[[JobResources], Awaitable[int]]
"""Periodic upkeep a feature owns (e.g. sweeping abandoned uploads): run by every consuming
process every `KEEL_MAINTENANCE_SECONDS`; returns how many things it cleaned up. It must be
safe to run in several processes at once."""


@dataclass(frozen=True, slots=True)
class JobContext:
    job_id: uuid.UUID
    kind: str
    owner_id: uuid.UUID | None
    payload: Mapping[str, Any]
    attempt: int
    resources: JobResources
    _report: ProgressReporter

    async def progress(self, done: int, total: int | None = None) -> None:
        """Record and announce progress; raises JobCancelledError if cancellation was asked."""
        await self._report(done, total)


JobHandler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]
JobHandlers = Mapping[str, JobHandler]
