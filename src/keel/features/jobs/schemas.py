from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from keel.core.jobs.models import JobStatus


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
        if hasattr(value, "progress_done"):
            return {
                **{name: getattr(value, name) for name in cls.model_fields if name != "progress"},
                "progress": {"done": value.progress_done, "total": value.progress_total},
            }
        return value
