"""The declarative base every feature's models derive from.

The naming convention gives every constraint a deterministic name, which Alembic needs to
drop or alter constraints on both PostgreSQL and SQLite (batch mode).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import TypeAdapter
from sqlalchemy import DateTime, Enum, MetaData, TypeDecorator, Uuid
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


_TIMESTAMP = TypeAdapter(datetime)


def timestamp(value: datetime) -> str:
    """A timestamp as the REST API writes it (pydantic: `2026-12-01T21:56:28.073494Z`), for
    messages built by hand (WebSocket events), so clients parse one format everywhere;
    `datetime.isoformat()` would end in `+00:00`."""
    text: str = _TIMESTAMP.dump_python(value, mode="json")
    return text


def str_enum(enum: type[StrEnum], length: int) -> Enum:
    """A status column typed with its StrEnum: rows read back as members, members are written
    as their values, so no call site needs `.value`.

    The schema stays the plain `VARCHAR(length)` it is: no native enum type and no generated
    CHECK (each table names its own `known_*` constraint), so adding a member is a migration
    of that constraint only.
    """
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


POSTGRESQL_ONLY = "postgresql_only_indexes"
"""A table's `info` key naming the indexes only its PostgreSQL migration builds (trigram
indexes, which SQLite lacks), so not in the models: autogenerate leaves them alone."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend.

    PostgreSQL stores `timestamptz`; SQLite stores text without an offset, so values are
    normalised to UTC on the way in and marked UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {uuid.UUID: Uuid(), datetime: UTCDateTime()}


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
