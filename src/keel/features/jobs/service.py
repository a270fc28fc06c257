"""Who may see and cancel which job: owners their own, admins all; anyone else gets a 404."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.database import after_commit, reads_on
from keel.core.errors import ConflictError, NotFoundError
from keel.core.events import Event, EventHub
from keel.core.jobs import repository
from keel.core.jobs.models import FINISHED, Job, JobStatus
from keel.core.models import utcnow
from keel.core.pagination import PageBody, PageParams, fetch_page
from keel.features.jobs.schemas import job_fields
from keel.features.users.models import Role, User


async def list_jobs(session: AsyncSession, user: User, params: PageParams) -> PageBody:
    owner = None if user.has_role(Role.ADMIN) else user.id
    async with reads_on(session) as reads:
        page = await fetch_page(reads, repository.listed(owner), params)
    return page.render([job_fields(row) for row in page.rows])


async def read(session: AsyncSession, user: User, job_id: uuid.UUID) -> dict[str, Any]:
    """The job as `JobResponse` dumps it, for its owner or an admin."""
    row = await repository.shown(session, job_id)
    if row is None or not user.may_see(row.owner_id):
        raise _not_found()
    fields: dict[str, Any] = job_fields(row)
    return fields


def _not_found() -> NotFoundError:
    return NotFoundError("Job not found")


async def get_for(session: AsyncSession, user: User, job_id: uuid.UUID) -> Job:
    job = await repository.get(session, job_id)
    if job is None or not user.may_see(job.owner_id):
        raise _not_found()
    return job


def _finished(job: Job) -> ConflictError:
    return ConflictError(f"The job has already {job.status}", details={"status": job.status})


async def cancel(session: AsyncSession, events: EventHub, user: User, job_id: uuid.UUID) -> Job:
    """Queued: cancelled now. Running: asked to stop at its next checkpoint. Finished: 409."""
    job = await get_for(session, user, job_id)
    if job.status in FINISHED:
        raise _finished(job)
    if await repository.cancel_queued(session, job_id, utcnow()):
        event = Event(
            type="job.finished",
            id=str(job_id),
            user_id=job.owner_id,
            data={"kind": job.kind, "status": JobStatus.CANCELLED},
        )
        after_commit(session, lambda: events.publish(event))
    elif not await repository.request_cancel(session, job_id):
        await repository.reload(session, job)
        raise _finished(job)  # it finished a moment ago
    await repository.reload(session, job)
    return job
