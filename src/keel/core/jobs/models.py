from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from keel.core.models import Base, Timestamps, UUIDPrimaryKey, str_enum, utcnow


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended: its final status and what it leaves behind (a result or an error).

    The fields are named after the `jobs` columns they are written to.
    """

    status: JobStatus
    result: dict[str, Any] | None = None
    error: str | None = None

    def event_data(self, kind: str) -> dict[str, Any]:
        """The `job.finished` event's data: only the parts this outcome has."""
        data: dict[str, Any] = {"kind": kind, "status": self.status}
        if self.result is not None:
            data["result"] = self.result
        if self.error is not None:
            data["error"] = self.error
        return data


class Job(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="known_status",
        ),
        # The sweeper's two questions: which queued jobs are due, which leases ran out.
        Index("ix_jobs_status_next_attempt_at", "status", "next_attempt_at"),
        # Pages newest first (read backwards): one owner's, and everyone's for admins.
        Index("ix_jobs_owner_id_created_at", "owner_id", "created_at", "id"),
        Index("ix_jobs_created_at", "created_at", "id"),
    )

    # SET NULL: a job's record outlives the account that started it.
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(50))
    status: Mapped[JobStatus] = mapped_column(str_enum(JobStatus, 10), default=JobStatus.QUEUED)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0)  # may count bytes
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the broker was last given this job's id (NULL: it must be sent).
    enqueued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
