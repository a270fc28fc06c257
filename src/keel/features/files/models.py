from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from keel.core.models import Base, Timestamps, UUIDPrimaryKey, str_enum


class FileStatus(StrEnum):
    PENDING = "pending"  # a direct upload was announced; the object may not exist yet
    ACTIVE = "active"  # the object is complete and verified


class StoredFile(UUIDPrimaryKey, Timestamps, Base):
    """An object in storage and what Keel knows about it.

    A row exists only for a complete object, except a `pending` direct upload, which nobody
    sees until it is completed and verified.
    """

    __tablename__ = "files"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'active')", name="known_status"),
        CheckConstraint("size >= 0", name="size_not_negative"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[FileStatus] = mapped_column(str_enum(FileStatus, 10), default=FileStatus.ACTIVE)
    upload_expires_at: Mapped[datetime | None]
