"""Job kinds that exist only in tests, to drive the queue's paths: success, transient and
permanent failure, slow work with checkpoints."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from keel.core.jobs.handlers import JobContext, JobHandlers, PermanentJobError
from keel.core.jobs.models import Job
from keel.features.registry import job_handlers
from keel.features.users.models import User
from keel.main import create_app
from keel.settings import Settings
from tests.support import routes
from tests.support.accounts import Account, make_admin, signed_up
from tests.support.app import serve
from tests.support.databases import opened


async def echo(ctx: JobContext) -> dict[str, Any]:
    return {"echo": dict(ctx.payload)}


async def flaky(ctx: JobContext) -> dict[str, Any]:
    """Fails with a transient error until attempt `succeed_on`."""
    if ctx.attempt < int(ctx.payload.get("succeed_on", 10**6)):
        raise RuntimeError(f"transient failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


async def broken(ctx: JobContext) -> None:
    raise PermanentJobError("the input can never work")


async def bad_sql(ctx: JobContext) -> None:
    """Fails inside the database with `secret` bound (and, on PostgreSQL, quoted back in the
    error's DETAIL): a NOT NULL violation on a user row carrying it as the password hash."""
    async with ctx.resources.database.transaction() as session:
        session.add(
            User(email=None, full_name="x", password_hash=ctx.payload["secret"], is_active=True)
        )
        await session.flush()


async def slow(ctx: JobContext) -> dict[str, Any]:
    steps = int(ctx.payload.get("steps", 50))
    for step in range(1, steps + 1):
        await asyncio.sleep(float(ctx.payload.get("delay", 0.05)))
        await ctx.progress(step, steps)
    return {"steps": steps}


TEST_HANDLERS: JobHandlers = {
    **job_handlers(),
    "test.echo": echo,
    "test.flaky": flaky,
    "test.broken": broken,
    "test.slow": slow,
    "test.bad_sql": bad_sql,
}


FAST_JOBS: dict[str, Any] = {
    "job_retry_base_seconds": 0.05,
    "job_retry_max_seconds": 0.2,
    "job_sweep_seconds": 0.05,
    "job_lease_seconds": 3,
}
"""Settings that make retries and the sweeper quick enough for tests."""

FINISHED = {"succeeded", "failed", "cancelled"}


@asynccontextmanager
async def jobs_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on a real (committing) database, running the test job kinds."""
    application = create_app(settings, job_handlers=TEST_HANDLERS)
    application.include_router(routes.router)
    async with serve(application) as http:
        yield http


async def live_admin(http: httpx.AsyncClient, settings: Settings) -> Account:
    account = await signed_up(http)
    async with opened(settings.database_url) as database, database.engine.begin() as conn:
        await make_admin(conn, account)
    return account


async def enqueue(
    http: httpx.AsyncClient, account: Account | None, kind: str, **payload: Any
) -> str:
    max_attempts = payload.pop("max_attempts", None)
    response = await http.post(
        "/_test/jobs",
        headers=account.headers if account else {},
        json={"kind": kind, "payload": payload, "max_attempts": max_attempts},
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def wait_for_job(
    http: httpx.AsyncClient,
    account: Account,
    job_id: str,
    until: set[str] = FINISHED,
    *,
    within: float = 20.0,
    progressed: bool = False,
) -> dict[str, Any]:
    """Poll the job until its status is in `until` (and, if asked, it has made progress),
    through the test routes (the app must include them: `jobs_client` does), so the queue's
    tests do not need the optional jobs API."""
    deadline = time.monotonic() + within
    while True:
        response = await http.get(f"/_test/jobs/{job_id}", headers=account.headers)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in until and (not progressed or job["progress"]["done"] > 0):
            return job
        assert time.monotonic() < deadline, f"job stuck: {job}"
        await asyncio.sleep(0.05)


async def job_row(settings: Settings, job_id: str | uuid.UUID) -> Job:
    async with opened(settings.database_url) as database, database.sessionmaker() as session:
        row = await session.get(Job, uuid.UUID(str(job_id)))
    assert row is not None
    return row


async def insert_job(settings: Settings, **fields: Any) -> uuid.UUID:
    """A job row written straight to the database, as a crashed process would leave it."""
    job = Job(**{"kind": "test.echo", "payload": {}, "max_attempts": 3, **fields})
    async with (
        opened(settings.database_url) as database,
        database.sessionmaker() as session,
        session.begin(),
    ):
        session.add(job)
    return job.id


async def finished_row(settings: Settings, job_id: str | uuid.UUID) -> Job:
    """Wait (without the API) until the job has an outcome."""
    for _ in range(400):
        row = await job_row(settings, job_id)
        if row.status in FINISHED:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")
