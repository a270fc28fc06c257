"""The model base: UUID keys, aware timestamps on every backend, and constraint names."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import CheckConstraint, String, select, type_coerce
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from keel.core.jobs.models import Job, JobStatus
from keel.core.models import Base, Timestamps, UTCDateTime, UUIDPrimaryKey


class ScratchBase(DeclarativeBase):
    """Same type map as Keel's Base, but its own metadata: these tables never reach Alembic."""

    type_annotation_map = Base.type_annotation_map


class Widget(ScratchBase, UUIDPrimaryKey, Timestamps):
    __tablename__ = "widgets"
    name: Mapped[str] = mapped_column(String(50))


async def test_uuid_keys_and_aware_timestamps_round_trip_on_sqlite() -> None:
    engine = create_async_engine("sqlite+aiosqlite://")
    async with engine.begin() as connection:
        await connection.run_sync(ScratchBase.metadata.create_all)
    async with AsyncSession(engine, expire_on_commit=False) as session:
        widget = Widget(name="w")
        session.add(widget)
        await session.commit()
        created = widget.created_at
        widget.name = "renamed"
        await session.commit()

    async with AsyncSession(engine) as session:
        loaded = (await session.execute(select(Widget))).scalar_one()
    await engine.dispose()

    assert isinstance(loaded.id, uuid.UUID)
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.created_at == created
    assert loaded.updated_at > loaded.created_at


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), None)  # type: ignore[arg-type]


def test_offsets_are_normalised_to_utc() -> None:
    plus_two = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    stored = UTCDateTime().process_bind_param(plus_two, None)  # type: ignore[arg-type]
    assert stored == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert stored is not None
    assert stored.tzinfo == UTC
    loaded = UTCDateTime().process_result_value(datetime(2026, 1, 1, 10), None)  # type: ignore[arg-type]
    assert loaded == stored
    assert UTCDateTime().process_result_value(None, None) is None  # type: ignore[arg-type]


def test_constraints_get_deterministic_names() -> None:
    convention = Base.metadata.naming_convention
    assert convention["pk"] == "pk_%(table_name)s"
    assert "fk" in convention
    assert "uq" in convention


async def test_status_columns_read_back_as_their_enum_and_store_the_value(
    db_connection: AsyncConnection,
) -> None:
    """`str_enum`: a member in, its value in the column (what the CHECK constraints and SQL
    see), a member out; a plain string still compares, so no call site needs `.value`."""
    async with AsyncSession(bind=db_connection, join_transaction_mode="create_savepoint") as s:
        job = Job(kind="test.echo", max_attempts=1, status=JobStatus.RUNNING)
        s.add(job)
        await s.flush()
        # Read as the plain string column it is: what the row really holds.
        stored = await s.scalar(select(type_coerce(Job.status, String)).where(Job.id == job.id))
        s.expunge_all()
        loaded = await s.scalar(select(Job).where(Job.id == job.id, Job.status == "running"))
    assert (type(stored), stored) == (str, "running")
    assert loaded is not None
    assert loaded.status is JobStatus.RUNNING


def test_status_columns_stay_plain_varchars() -> None:
    """No native enum type and no CHECK of SQLAlchemy's own: the schema the migrations made."""
    column = Job.__table__.c.status
    assert column.type.compile(dialect=postgresql.dialect()) == "VARCHAR(10)"
    checks = [c.name for c in Job.__table__.constraints if isinstance(c, CheckConstraint)]
    assert checks == ["ck_jobs_known_status"]
