"""Every change of a job's state as one conditional UPDATE.

The conditions are the concurrency control: a job is claimed by exactly one process (it must
be due, or its previous runner's lease must have run out), and every later write names the
attempt that claimed it, so a runner that lost its lease (paused, partitioned, presumed
dead) can no longer record progress or an outcome over its successor's.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.jobs.models import Job, JobStatus, Outcome
from keel.core.repository import Rows, newest_first
from keel.core.sql import update_where


def _held(job_id: uuid.UUID, attempt: int) -> ColumnElement[bool]:
    return and_(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.attempts == attempt)


_rows = Rows(Job)
get = _rows.get
add = _rows.add


async def reload(session: AsyncSession, job: Job) -> None:
    """Read the job's row again after a conditional update (or a worker) changed it."""
    await session.refresh(job)


PAGE_COLUMNS: tuple[Any, ...] = (
    Job.id,
    Job.kind,
    Job.status,
    Job.progress_done,
    Job.progress_total,
    Job.attempts,
    Job.result,
    Job.error,
    Job.cancel_requested,
    Job.created_at,
    Job.started_at,
    Job.finished_at,
)


def listed(owner_id: uuid.UUID | None) -> Select[Any]:
    """A page's columns, newest first; everyone's when `owner_id` is None."""
    return newest_first(Job, Job.owner_id, owner_id, *PAGE_COLUMNS)


async def shown(session: AsyncSession, job_id: uuid.UUID) -> Row[Any] | None:
    """One job's response columns and its owner (a job is polled while it runs: no ORM)."""
    columns: tuple[Any, ...] = (*PAGE_COLUMNS, Job.owner_id)
    found: Row[Any] | None = (
        await session.execute(select(*columns).where(Job.id == job_id))
    ).one_or_none()
    return found


async def claim(
    session: AsyncSession, job_id: uuid.UUID, now: datetime, lease_until: datetime
) -> Job | None:
    """Start an attempt if the job is due (or its runner's lease ran out); None otherwise."""
    result = await session.scalars(
        update(Job)
        .where(
            Job.id == job_id,
            Job.attempts < Job.max_attempts,
            or_(
                and_(Job.status == JobStatus.QUEUED, Job.next_attempt_at <= now),
                and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now),
            ),
        )
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            lease_expires_at=lease_until,
            started_at=func.coalesce(Job.started_at, now),
            enqueued_at=None,
        )
        .returning(Job),
        execution_options={"synchronize_session": False},
    )
    return result.one_or_none()


async def renew_lease(
    session: AsyncSession, job_id: uuid.UUID, attempt: int, lease_until: datetime
) -> bool:
    return bool(
        await update_where(session, Job, _held(job_id, attempt), lease_expires_at=lease_until)
    )


async def record_progress(
    session: AsyncSession, job_id: uuid.UUID, attempt: int, done: int, total: int | None
) -> bool | None:
    """Store progress; returns whether cancellation was requested, or None if the lease is lost."""
    values: dict[str, Any] = {"progress_done": done}
    if total is not None:
        values["progress_total"] = total
    result = await session.execute(
        update(Job).where(_held(job_id, attempt)).values(**values).returning(Job.cancel_requested)
    )
    row = result.one_or_none()
    return None if row is None else bool(row[0])


async def finish(
    session: AsyncSession,
    job_id: uuid.UUID,
    attempt: int,
    outcome: Outcome,
    now: datetime,
) -> bool:
    values = {**asdict(outcome), "finished_at": now, "lease_expires_at": None}
    return bool(await update_where(session, Job, _held(job_id, attempt), **values))


async def retry_later(
    session: AsyncSession, job_id: uuid.UUID, attempt: int, at: datetime, error: str
) -> bool:
    retried = await update_where(
        session,
        Job,
        _held(job_id, attempt),
        status=JobStatus.QUEUED,
        next_attempt_at=at,
        enqueued_at=None,
        lease_expires_at=None,
        error=error,
    )
    return bool(retried)


def _requeue_values(now: datetime, *, refund_attempt: bool) -> dict[str, Any]:
    """Back to the queue (or cancelled, if that was asked meanwhile), to be sent again."""
    values: dict[str, Any] = {
        "status": case((Job.cancel_requested, JobStatus.CANCELLED), else_=JobStatus.QUEUED),
        "finished_at": case((Job.cancel_requested, now), else_=None),
        "next_attempt_at": now,
        "enqueued_at": None,
        "lease_expires_at": None,
    }
    if refund_attempt:
        values["attempts"] = Job.attempts - 1
    return values


async def release(session: AsyncSession, job_id: uuid.UUID, attempt: int, now: datetime) -> bool:
    """Give a job back without counting the attempt (this process is shutting down)."""
    values = _requeue_values(now, refund_attempt=True)
    return bool(await update_where(session, Job, _held(job_id, attempt), **values))


async def requeue_interrupted(session: AsyncSession, now: datetime) -> int:
    """Every running job back to the queue: for a single process starting up, any job still
    marked running was interrupted by its previous life."""
    values = _requeue_values(now, refund_attempt=True)
    return await update_where(session, Job, Job.status == JobStatus.RUNNING, **values)


async def requeue_lost(session: AsyncSession, now: datetime) -> list[uuid.UUID]:
    """Running jobs whose lease ran out (their worker died) go back to the queue; those that
    have used every attempt fail."""
    lost = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    failed = await session.scalars(
        update(Job)
        .where(lost, Job.attempts >= Job.max_attempts, Job.cancel_requested.is_(False))
        .values(
            status=JobStatus.FAILED,
            error="The job's worker stopped on every attempt",
            finished_at=now,
            lease_expires_at=None,
        )
        .returning(Job.id)
    )
    failed_ids = list(failed)
    await session.execute(
        update(Job).where(lost).values(**_requeue_values(now, refund_attempt=False))
    )
    return failed_ids


async def needs_sweep(session: AsyncSession, now: datetime, resend_before: datetime) -> bool:
    """Whether a sweep would change anything: a read, so an idle sweeper never takes a write
    lock (on SQLite that lock is the whole database's)."""
    work = select(Job.id).where(
        or_(
            and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now),
            and_(
                Job.status == JobStatus.QUEUED,
                Job.next_attempt_at <= now,
                or_(Job.enqueued_at.is_(None), Job.enqueued_at < resend_before),
            ),
        )
    )
    return bool(await session.scalar(select(work.exists())))


async def any_running(session: AsyncSession) -> bool:
    return bool(
        await session.scalar(select(select(Job.id).where(Job.status == JobStatus.RUNNING).exists()))
    )


async def take_due(
    session: AsyncSession, now: datetime, resend_before: datetime, limit: int = 500
) -> list[uuid.UUID]:
    """Ids of queued jobs that are due and were never sent, or sent long ago without being
    started (a lost message), marked as sent now."""
    due = (
        select(Job.id)
        .where(
            Job.status == JobStatus.QUEUED,
            Job.next_attempt_at <= now,
            or_(Job.enqueued_at.is_(None), Job.enqueued_at < resend_before),
        )
        .order_by(Job.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # concurrent sweepers split the work (PostgreSQL)
    )
    result = await session.scalars(
        update(Job)
        .where(Job.id.in_(due.scalar_subquery()), Job.status == JobStatus.QUEUED)
        .values(enqueued_at=now)
        .returning(Job.id)
    )
    return list(result)


async def cancel_queued(session: AsyncSession, job_id: uuid.UUID, now: datetime) -> bool:
    queued = and_(Job.id == job_id, Job.status == JobStatus.QUEUED)
    return bool(
        await update_where(session, Job, queued, status=JobStatus.CANCELLED, finished_at=now)
    )


async def request_cancel(session: AsyncSession, job_id: uuid.UUID) -> bool:
    running = and_(Job.id == job_id, Job.status == JobStatus.RUNNING)
    return bool(await update_where(session, Job, running, cancel_requested=True))
