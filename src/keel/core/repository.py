"""What every repository needs and none varies: add, get by id (or `find` by a unique
column) and delete one model's rows.

A feature's repository binds its model once (`_rows = Rows(Product)`) and re-exports what it
uses, so services keep calling `repository.get(session, id)`. `newest_first` is the one
listing order of owned rows (orders, jobs), selecting only the columns a page shows.
Everything that differs between features (filters, conditional UPDATEs, locks) stays written
out in the feature's repository.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Mapped

from keel.core.models import Base

M = TypeVar("M", bound=Base)


class Rows(Generic[M]):
    __slots__ = ("model",)

    def __init__(self, model: type[M]) -> None:
        self.model = model

    async def get(self, session: AsyncSession, row_id: uuid.UUID) -> M | None:
        return await session.get(self.model, row_id)

    async def find(self, session: AsyncSession, *conditions: ColumnElement[bool]) -> M | None:
        """The one row that `conditions` name (a unique column's value), or None."""
        result = await session.execute(select(self.model).where(*conditions))
        return result.scalar_one_or_none()

    async def add(self, session: AsyncSession, row: M) -> M:
        """Insert now (flush), so the caller sees database defaults and constraint errors here."""
        session.add(row)
        await session.flush()
        return row

    async def delete(self, session: AsyncSession, row: M) -> None:
        await session.delete(row)
        await session.flush()


class _Dated(Protocol):
    """A model with the `UUIDPrimaryKey` and `Timestamps` columns."""

    id: ClassVar[Mapped[uuid.UUID]]
    created_at: ClassVar[Mapped[datetime]]


def newest_first(
    model: type[_Dated],
    owner: InstrumentedAttribute[Any],
    owner_id: uuid.UUID | None,
    *columns: Any,
) -> Select[Any]:
    """`columns` of `model`'s rows newest first, the id breaking ties so pages stay stable;
    everyone's rows when `owner_id` is None (an admin's list), else those whose `owner` column
    is `owner_id`. Both directions descend, so one `(owner, created_at, id)` index read
    backwards serves a page without sorting."""
    statement = select(*columns).order_by(model.created_at.desc(), model.id.desc())
    if owner_id is not None:
        statement = statement.where(owner == owner_id)
    return statement
