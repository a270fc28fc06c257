"""Endpoints that exist only in tests, to drive the foundation's paths end to end.

`test_probe` is a scratch table the suite creates next to the migrated schema (see
`support.databases.create_probe_table`), so transaction behaviour can be observed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from keel.core.database import keep_changes
from keel.core.dependencies import DbSession, Events, Jobs, Store
from keel.core.errors import BadRequestError, ConflictError, NotFoundError
from keel.core.events import Event
from keel.core.jobs.models import Job
from keel.features.auth.dependencies import OptionalUser

router = APIRouter(prefix="/_test")


class Echo(BaseModel):
    name: str
    count: int


@router.post("/echo")
async def echo(body: Echo) -> Echo:
    return body


@router.get("/db")
async def database_roundtrip(session: DbSession) -> dict[str, int]:
    value = (await session.execute(text("SELECT 1"))).scalar_one()
    return {"value": value}


@router.get("/hold")
async def hold_connection(session: DbSession, seconds: float = 1.0) -> dict[str, bool]:
    await session.execute(text("SELECT 1"))
    await asyncio.sleep(seconds)
    return {"held": True}


BOOM_SECRET = "boom-local-" + "s3cr3t"
"""Held in a local variable of every frame `/_test/boom-deep` raises through; never in a log."""


def _raise_at_depth(depth: int, secret: str) -> None:
    if depth <= 0:
        raise RuntimeError("boom on purpose")
    _raise_at_depth(depth - 1, secret)


@router.get("/boom-deep")
async def boom_deep(depth: int = 1) -> None:
    """An unexpected exception from `depth` frames down: a 500 with a long traceback."""
    _raise_at_depth(depth, BOOM_SECRET)


@router.get("/db-sleep")
async def slow_statement(session: DbSession, seconds: float = 1.0) -> dict[str, bool]:
    """One SQL statement that takes `seconds` on the server (PostgreSQL only)."""
    await session.execute(text("SELECT pg_sleep(:seconds)"), {"seconds": seconds})
    return {"slept": True}


@router.post("/probe/{label}")
async def write_probe(
    session: DbSession, label: str, fail: bool = False, keep: bool = False
) -> dict[str, str]:
    """Write one probe row; `fail` answers 409 after the write, `keep` through `keep_changes`."""
    await session.execute(text("INSERT INTO test_probe (label) VALUES (:label)"), {"label": label})
    if keep:
        raise keep_changes(session, ConflictError("kept after writing", details={"kept": True}))
    if fail:
        raise ConflictError("failed after writing")
    return {"label": label}


@router.post("/probe-replaced/{label}")
async def replaced_kept_error(session: DbSession, label: str) -> None:
    """An error marked to keep the changes, replaced by another one before it propagates."""
    await session.execute(text("INSERT INTO test_probe (label) VALUES (:label)"), {"label": label})
    try:
        raise keep_changes(session, ConflictError("kept"))
    except ConflictError:
        raise BadRequestError("raised while handling the kept error") from None


@router.get("/write-in-get/{label}")
async def write_in_get(session: DbSession, label: str) -> dict[str, str]:
    """A bug on purpose: a safe method trying to write."""
    await session.execute(text("INSERT INTO test_probe (label) VALUES (:label)"), {"label": label})
    return {"label": label}


@router.get("/probe/{label}")
async def count_probe(session: DbSession, label: str) -> dict[str, int]:
    count = (
        await session.execute(
            text("SELECT COUNT(*) FROM test_probe WHERE label = :label"), {"label": label}
        )
    ).scalar_one()
    return {"count": count}


RECEIVED_EVENTS: dict[str, list[Event]] = {}
"""Events seen by listeners that tests attach through `POST /_test/events/{key}`."""


@router.post("/events/{key}")
async def listen_to_events(key: str, events: Events) -> dict[str, str]:
    bucket = RECEIVED_EVENTS.setdefault(key, [])

    async def collect(event: Event) -> None:
        bucket.append(event)

    events.subscribe(collect)
    return {"listening": key}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret detail: /srv/keel/app.py SELECT password FROM users")


@router.get("/conflict")
async def conflict() -> None:
    raise ConflictError("Already exists", details={"field": "sku"})


@router.get("/large")
async def large() -> dict[str, str]:
    return {"data": "x" * 5000}


@router.get("/storage")
async def stored_keys(storage: Store) -> list[str]:
    """Every object in the app's storage, to prove failures leave nothing behind."""
    return await storage.keys()


class JobRequest(BaseModel):
    kind: str
    payload: dict[str, Any] = {}
    max_attempts: int | None = None


@router.post("/jobs", status_code=202)
async def enqueue_job(
    body: JobRequest, session: DbSession, jobs: Jobs, user: OptionalUser
) -> dict[str, str]:
    job = await jobs.enqueue(
        session,
        body.kind,
        body.payload,
        owner_id=user.id if user else None,
        max_attempts=body.max_attempts,
    )
    return {"id": str(job.id)}


@router.get("/jobs/{job_id}")
async def read_job(job_id: uuid.UUID, session: DbSession) -> dict[str, Any]:
    """A job's row as the jobs API shows it, for tests of the queue that must not need that
    optional feature."""
    job = await session.get(Job, job_id)
    if job is None:
        raise NotFoundError("no such job")
    return {
        "id": str(job.id),
        "kind": job.kind,
        "status": job.status,
        "progress": {"done": job.progress_done, "total": job.progress_total},
        "attempts": job.attempts,
        "result": job.result,
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


class Publish(BaseModel):
    type: str
    id: str
    user_id: uuid.UUID | None = None
    data: dict[str, Any] = {}


@router.post("/publish", status_code=202)
async def publish_event(body: Publish, events: Events) -> dict[str, bool]:
    await events.publish(Event(type=body.type, id=body.id, user_id=body.user_id, data=body.data))
    return {"published": True}
