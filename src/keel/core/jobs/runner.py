"""Runs one job id to an outcome: claim, heartbeat, the handler, then succeed, retry or fail.

Every state change is its own short committed transaction, separate from whatever the
handler does in its own sessions, so progress is visible while the job runs.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import Any

from keel.core.error_reporting import report_exception
from keel.core.events import Event
from keel.core.jobs import repository
from keel.core.jobs.handlers import (
    JobCancelledError,
    JobContext,
    JobHandlers,
    JobResources,
    Maintenance,
    PermanentJobError,
)
from keel.core.jobs.models import Job, JobStatus, Outcome
from keel.core.logging import get_logger
from keel.core.models import utcnow
from keel.core.tracing import job_span, record_job_outcome

log = get_logger(__name__)


class LeaseLostError(Exception):
    """Another process took the job over (this one was presumed dead); stop quietly."""


def backoff_seconds(attempt: int, base: float, ceiling: float) -> float:
    """Exponential backoff with jitter: about base·2^(attempt-1), capped, spread ±50% so
    jobs that failed together do not all retry together."""
    delay = min(ceiling, base * 2.0 ** (attempt - 1))
    jitter: float = random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not security
    return delay * jitter


def client_message(exc: Exception) -> str:
    """What a job's owner is told about an unexpected failure: what kind, never its text.

    An exception's text is for operators: a database error's carries the statement and the
    server's detail (which can quote the row, password hash included), an HTTP client's the
    URL. Messages meant for the owner come from `PermanentJobError` and are shown as written.
    """
    return f"The job stopped on an internal error ({type(exc).__name__}); it is in the server log"


class JobRunner:
    def __init__(
        self,
        resources: JobResources,
        handlers: JobHandlers,
        maintenance: Sequence[Maintenance] = (),
    ) -> None:
        self.resources = resources
        self.handlers = handlers
        self.maintenance = tuple(maintenance)
        settings = resources.settings
        self._lease = timedelta(seconds=settings.job_lease_seconds)
        self._slots = asyncio.Semaphore(settings.job_concurrency)
        self._active: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def run(self, job_id: uuid.UUID) -> None:
        """Run the job if it is ours to run; a duplicate delivery finds it taken and returns."""
        async with self._slots:
            task = asyncio.current_task()
            assert task is not None
            self._active.add(task)
            try:
                await self._run(job_id)
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                # Handed back by stop(): a normal end for the broker (the message is acked;
                # the sweeper of a live process sends the job again), not a failure to log.
                task.uncancel()
            finally:
                self._active.discard(task)

    async def stop(self) -> None:
        """Interrupt running jobs; each gives itself back to the queue for another process."""
        self._stopping = True
        for task in list(self._active):
            task.cancel()
        await asyncio.gather(*self._active, return_exceptions=True)

    async def _run(self, job_id: uuid.UUID) -> None:
        now = utcnow()
        async with self.resources.database.transaction() as session:
            job = await repository.claim(session, job_id, now, now + self._lease)
        if job is None:
            log.debug("job_not_claimed", job_id=str(job_id))
            return
        attempt = job.attempts
        heartbeat = asyncio.create_task(self._heartbeat(job_id, attempt))
        try:
            with job_span(self.resources.tracing, job.kind, job.id, attempt):
                log.info("job_started", job_id=str(job_id), kind=job.kind, attempt=attempt)
                await self._execute(job, attempt)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(job_id, attempt))
            raise
        finally:
            heartbeat.cancel()

    async def _execute(self, job: Job, attempt: int) -> None:
        handler = self.handlers.get(job.kind)
        context = JobContext(
            job_id=job.id,
            kind=job.kind,
            owner_id=job.owner_id,
            payload=job.payload,
            attempt=attempt,
            resources=self.resources,
            _report=partial(self._report, job, attempt),
        )
        try:
            if handler is None:
                raise PermanentJobError(f"No handler for jobs of kind {job.kind!r}")
            result = await handler(context)
        except JobCancelledError:
            await self._finish(job, attempt, Outcome(JobStatus.CANCELLED))
        except PermanentJobError as exc:
            await self._finish(job, attempt, Outcome(JobStatus.FAILED, error=str(exc)))
        except LeaseLostError:
            log.warning("job_lease_lost", job_id=str(job.id), attempt=attempt)
            record_job_outcome(self.resources.tracing, "lease_lost")
        except Exception as exc:
            await self._failed(job, attempt, exc)
        else:
            await self._finish(job, attempt, Outcome(JobStatus.SUCCEEDED, result=result or {}))

    async def _failed(self, job: Job, attempt: int, exc: Exception) -> None:
        error = client_message(exc)
        # The log has the exception itself (its SQL, never its bound values: see the engine);
        # the job's `error`, which its owner reads through the API, only the short message.
        detail = f"{type(exc).__name__}: {exc}"[:2000]
        if attempt >= job.max_attempts:
            log.error(
                "job_failed", job_id=str(job.id), kind=job.kind, attempt=attempt, error=detail
            )
            report_exception(exc, job_id=str(job.id), job_kind=job.kind)
            await self._finish(job, attempt, Outcome(JobStatus.FAILED, error=error))
            return
        settings = self.resources.settings
        delay = backoff_seconds(
            attempt, settings.job_retry_base_seconds, settings.job_retry_max_seconds
        )
        log.warning(
            "job_retry_scheduled",
            job_id=str(job.id),
            attempt=attempt,
            delay_seconds=round(delay, 2),
            error=detail,
        )
        record_job_outcome(self.resources.tracing, "retry_scheduled", error)
        async with self.resources.database.transaction() as session:
            await repository.retry_later(
                session, job.id, attempt, utcnow() + timedelta(seconds=delay), error
            )

    async def _finish(self, job: Job, attempt: int, outcome: Outcome) -> None:
        async with self.resources.database.transaction() as session:
            done = await repository.finish(session, job.id, attempt, outcome, utcnow())
        if not done:
            log.warning("job_outcome_lost", job_id=str(job.id), attempt=attempt)
            return
        log.info("job_finished", job_id=str(job.id), kind=job.kind, status=outcome.status)
        record_job_outcome(self.resources.tracing, outcome.status, outcome.error)
        await self.resources.events.publish(
            Event(
                type="job.finished",
                id=str(job.id),
                user_id=job.owner_id,
                data=outcome.event_data(job.kind),
            )
        )

    async def _report(self, job: Job, attempt: int, done: int, total: int | None) -> None:
        async with self.resources.database.transaction() as session:
            cancel = await repository.record_progress(session, job.id, attempt, done, total)
        if cancel is None:
            raise LeaseLostError
        if cancel:
            raise JobCancelledError
        await self.resources.events.publish(
            Event(
                type="job.progress",
                id=str(job.id),
                user_id=job.owner_id,
                data={"kind": job.kind, "done": done, "total": total},
            )
        )

    async def _heartbeat(self, job_id: uuid.UUID, attempt: int) -> None:
        """Renew the lease at a third of its length, so two missed beats still keep it."""
        interval = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.resources.database.transaction() as session:
                    held = await repository.renew_lease(
                        session, job_id, attempt, utcnow() + self._lease
                    )
            except Exception:
                log.exception("job_heartbeat_failed", job_id=str(job_id))
                continue
            if not held:
                return

    async def _release(self, job_id: uuid.UUID, attempt: int) -> None:
        try:
            async with self.resources.database.transaction() as session:
                await repository.release(session, job_id, attempt, utcnow())
            log.info("job_released", job_id=str(job_id), attempt=attempt)
        except Exception:  # the lease runs out instead, and the sweeper sends it again
            log.exception("job_release_failed", job_id=str(job_id))
