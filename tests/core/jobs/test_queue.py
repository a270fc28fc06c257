"""The queue's promises, through the API on a real database: retries with backoff, permanent
failures, cancellation at checkpoints, and no job lost across a restart."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from keel.core.jobs.models import Job, Outcome
from keel.core.models import utcnow
from keel.settings import Settings
from tests.support.accounts import signed_up
from tests.support.databases import opened
from tests.support.jobs import (
    FAST_JOBS,
    enqueue,
    finished_row,
    insert_job,
    job_row,
    jobs_client,
    wait_for_job,
)
from tests.support.routes import RECEIVED_EVENTS


async def test_a_job_runs_to_success_and_announces_it(fast_jobs_settings: Settings) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        account = await signed_up(http)
        key = uuid.uuid4().hex
        await http.post(f"/_test/events/{key}")
        job_id = await enqueue(http, account, "test.echo", word="hello")
        job = await wait_for_job(http, account, job_id)
    assert job["status"] == "succeeded"
    assert job["result"] == {"echo": {"word": "hello"}}
    assert job["attempts"] == 1
    assert job["error"] is None
    assert job["started_at"] is not None
    assert job["finished_at"] >= job["started_at"]
    finished = [e for e in RECEIVED_EVENTS[key] if e.type == "job.finished"]
    assert [e.id for e in finished] == [job_id]
    assert finished[0].user_id == uuid.UUID(account.id)
    assert finished[0].data["status"] == "succeeded"


async def test_transient_failures_are_retried_until_success(fast_jobs_settings: Settings) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        account = await signed_up(http)
        job_id = await enqueue(http, account, "test.flaky", succeed_on=3)
        job = await wait_for_job(http, account, job_id)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 3
    assert job["result"] == {"attempt": 3}


async def test_a_job_that_keeps_failing_fails_after_its_last_attempt(
    fast_jobs_settings: Settings,
) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        account = await signed_up(http)
        job_id = await enqueue(http, account, "test.flaky", max_attempts=2)
        job = await wait_for_job(http, account, job_id)
    assert job["status"] == "failed"
    assert job["attempts"] == 2
    assert job["error"] == (
        "The job stopped on an internal error (RuntimeError); it is in the server log"
    )


async def test_a_permanent_failure_is_not_retried(fast_jobs_settings: Settings) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        account = await signed_up(http)
        job_id = await enqueue(http, account, "test.broken")
        job = await wait_for_job(http, account, job_id)
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert job["error"] == "the input can never work"


async def test_a_database_error_reaches_neither_the_client_nor_the_log_with_its_values(
    fast_jobs_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The job's owner reads `error`: a short message, no SQL and no bound values. The log
    keeps the statement for operators, without the values or PostgreSQL's DETAIL row."""
    secret = f"hash-{uuid.uuid4().hex}"
    async with jobs_client(fast_jobs_settings) as http:
        account = await signed_up(http)
        job_id = await enqueue(http, account, "test.bad_sql", secret=secret, max_attempts=2)
        job = await wait_for_job(http, account, job_id)
    assert job["status"] == "failed"
    assert job["error"] == (
        "The job stopped on an internal error (IntegrityError); it is in the server log"
    )
    output = capsys.readouterr().out
    assert "job_failed" in output
    assert "INSERT INTO users" in output  # what failed is still there for operators
    assert secret not in output


async def test_an_unknown_kind_fails_without_retrying(fast_jobs_settings: Settings) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        account = await signed_up(http)
        job_id = await enqueue(http, account, "test.no-such-kind")
        job = await wait_for_job(http, account, job_id)
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert "no-such-kind" in job["error"]


async def test_a_retry_waits_for_its_backoff(live_settings: Settings) -> None:
    settings = live_settings.model_copy(
        update={**FAST_JOBS, "job_retry_base_seconds": 60, "job_retry_max_seconds": 60}
    )
    async with jobs_client(settings) as http:
        account = await signed_up(http)
        job_id = await enqueue(http, account, "test.flaky")
        job = await wait_for_job(http, account, job_id, {"queued"}, progressed=False)
        while job["attempts"] == 0:
            job = await wait_for_job(http, account, job_id, {"queued"})
        row = await job_row(settings, job_id)
        delay = (row.next_attempt_at - utcnow()).total_seconds()
    assert job["status"] == "queued"
    assert job["attempts"] == 1
    assert job["error"] == (
        "The job stopped on an internal error (RuntimeError); it is in the server log"
    )
    assert 25 < delay <= 90  # 60 s ± 50 % jitter, less the time since


async def test_stopping_the_process_gives_running_jobs_back(fast_jobs_settings: Settings) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        account = await signed_up(http)
        job_id = await enqueue(http, account, "test.slow", steps=100, delay=0.05)
        await wait_for_job(http, account, job_id, {"running"}, progressed=True)
    # The lifespan has shut down mid-job: the job is queued again, its attempt not counted.
    row = await job_row(fast_jobs_settings, job_id)
    assert (row.status, row.attempts, row.enqueued_at) == ("queued", 0, None)

    async with jobs_client(fast_jobs_settings) as http:
        account = await signed_up(http)  # a fresh login; the job's owner is the first user
        job = await finished_row(fast_jobs_settings, job_id)
    assert job.status == "succeeded"
    assert job.attempts == 1


async def test_a_job_left_running_by_a_crash_is_resumed_at_start_up(
    fast_jobs_settings: Settings,
) -> None:
    """Embedded mode: a process killed mid-job leaves it `running` with a live lease."""
    job_id = await insert_job(
        fast_jobs_settings,
        payload={"n": 1},
        status="running",
        attempts=1,
        started_at=utcnow(),
        lease_expires_at=utcnow() + timedelta(hours=1),
        enqueued_at=None,
    )
    async with jobs_client(fast_jobs_settings):
        job = await finished_row(fast_jobs_settings, str(job_id))
    assert job.status == "succeeded"
    assert job.result == {"echo": {"n": 1}}
    assert job.attempts == 1  # the interrupted attempt is not counted against it


async def test_a_queued_job_whose_message_was_lost_is_sent_again(
    fast_jobs_settings: Settings,
) -> None:
    """A crash between commit and send: the row says queued, no broker ever heard of it."""
    job_id = await insert_job(fast_jobs_settings, enqueued_at=None)
    async with jobs_client(fast_jobs_settings):
        job = await finished_row(fast_jobs_settings, str(job_id))
    assert job.status == "succeeded"


async def test_lost_jobs_are_requeued_or_failed_on_their_last_attempt(
    fast_jobs_settings: Settings,
) -> None:
    """What the sweeper does for jobs whose worker died (their lease ran out)."""
    from keel.core.jobs import repository

    expired = utcnow() - timedelta(seconds=1)
    lost = {"status": "running", "lease_expires_at": expired, "enqueued_at": None}
    last_try = await insert_job(fast_jobs_settings, max_attempts=1, attempts=1, **lost)
    retry = await insert_job(fast_jobs_settings, max_attempts=3, attempts=1, **lost)
    cancelled = await insert_job(
        fast_jobs_settings, max_attempts=3, attempts=1, cancel_requested=True, **lost
    )
    async with (
        opened(fast_jobs_settings.database_url) as database,
        database.sessionmaker() as session,
        session.begin(),
    ):
        failed = await repository.requeue_lost(session, utcnow())
    assert failed == [last_try]
    rows = {
        job_id: await job_row(fast_jobs_settings, job_id) for job_id in (last_try, retry, cancelled)
    }
    assert rows[last_try].status == "failed"
    assert rows[last_try].error == "The job's worker stopped on every attempt"
    assert (rows[retry].status, rows[retry].attempts, rows[retry].enqueued_at) == (
        "queued",
        1,
        None,
    )
    assert rows[cancelled].status == "cancelled"
    assert rows[cancelled].finished_at is not None


async def test_an_outcome_from_a_runner_that_lost_its_lease_is_ignored(
    fast_jobs_settings: Settings,
) -> None:
    from keel.core.jobs import repository
    from keel.core.jobs.models import JobStatus

    succeeded = Outcome(JobStatus.SUCCEEDED)

    job_id = await insert_job(fast_jobs_settings, max_attempts=5)
    now = utcnow()
    async with opened(fast_jobs_settings.database_url) as database:
        sessions = database.sessionmaker
        async with sessions() as session, session.begin():  # a lease that has run out
            first = await repository.claim(session, job_id, now, now - timedelta(seconds=1))
            assert first is not None
            assert first.attempts == 1
        async with sessions() as session, session.begin():  # taken over by another runner
            second = await repository.claim(session, job_id, now, now + timedelta(minutes=1))
            assert second is not None
            assert second.attempts == 2
        async with sessions() as session, session.begin():
            assert not await repository.finish(
                session, job_id, 1, Outcome(JobStatus.SUCCEEDED), now
            )
            assert await repository.record_progress(session, job_id, 1, 5, 10) is None
            assert not await repository.renew_lease(session, job_id, 1, now)
            assert await repository.finish(session, job_id, 2, succeeded, now)
            assert await repository.claim(session, job_id, now, now) is None
            status = await session.scalar(select(Job.status).where(Job.id == job_id))
    assert status == "succeeded"
