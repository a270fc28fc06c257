from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from keel.core.jobs.models import JobStatus
from keel.core.schemas import nest_columns


class JobProgress(BaseModel):
    done: int
    total: int | None


class JobResponse(BaseModel):
    id: uuid.UUID
    kind: str
    status: JobStatus
    progress: JobProgress
    attempts: int
    result: dict[str, Any] | None
    error: str | None
    cancel_requested: bool = Field(description="Asked to stop; honoured at its next checkpoint.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @model_validator(mode="before")
    @classmethod
    def _from_model(cls, value: Any) -> Any:
        return job_fields(value)


def job_fields(value: Any) -> Any:
    """A job's row (ORM or a page's Core row) as `JobResponse` dumps it; anything else (a
    dict, a schema) unchanged."""
    return nest_columns(
        value, JobResponse.model_fields, "progress", done="progress_done", total="progress_total"
    )
