from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from keel.core.dependencies import DbSession, Events
from keel.core.pagination import Page, Pagination
from keel.features.auth.dependencies import CurrentUser
from keel.features.jobs import service
from keel.features.jobs.schemas import JobResponse

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get(
    "", summary="List jobs (your own; admins see everyone's)", response_model=Page[JobResponse]
)
async def list_jobs(user: CurrentUser, session: DbSession, pagination: Pagination) -> Response:
    return (await service.list_jobs(session, user, pagination)).response()


@router.get("/{job_id:uuid}", summary="Read a job's status, progress and result")
async def read_job(job_id: uuid.UUID, user: CurrentUser, session: DbSession) -> JobResponse:
    return JobResponse.model_validate(await service.get_for(session, user, job_id))


@router.post("/{job_id:uuid}/cancel", summary="Cancel a queued job, or ask a running one to stop")
async def cancel_job(
    job_id: uuid.UUID, user: CurrentUser, session: DbSession, events: Events
) -> JobResponse:
    return JobResponse.model_validate(await service.cancel(session, events, user, job_id))
