from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from keel.core.dependencies import DbSession, Events
from keel.core.pagination import PageBody, Pagination, page_route
from keel.core.schemas import fields_response
from keel.features.auth.dependencies import CurrentUser
from keel.features.jobs import service
from keel.features.jobs.schemas import JobResponse

router = APIRouter(prefix="/jobs", tags=["jobs"])


@page_route(router, JobResponse, "List jobs (your own; admins see everyone's)")
async def list_jobs(user: CurrentUser, session: DbSession, pagination: Pagination) -> PageBody:
    return await service.list_jobs(session, user, pagination)


@router.get(
    "/{job_id:uuid}",
    summary="Read a job's status, progress and result",
    response_model=JobResponse,
)
async def read_job(job_id: uuid.UUID, user: CurrentUser, session: DbSession) -> Response:
    return fields_response(await service.read(session, user, job_id))


@router.post("/{job_id:uuid}/cancel", summary="Cancel a queued job, or ask a running one to stop")
async def cancel_job(
    job_id: uuid.UUID, user: CurrentUser, session: DbSession, events: Events
) -> JobResponse:
    return JobResponse.model_validate(await service.cancel(session, events, user, job_id))
