"""The one pagination helper: `page`/`page_size` in, `{items, total, page, page_size, has_next}`
out, counted and sliced in SQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.types import PageNumber, PageSize

T = TypeVar("T")
R = TypeVar("R")


class PageParams(BaseModel):
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


async def page_params(  # async: a `def` dependency would cost a thread hop
    page: Annotated[PageNumber, Query()] = 1,
    page_size: Annotated[PageSize, Query()] = 20,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


Pagination = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int
    has_next: bool


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    params: PageParams,
    convert: Callable[[Any], R],
) -> Page[R]:
    """Run `statement` for one page (plus a COUNT of the whole result) and convert each row."""
    total = (
        await session.execute(select(func.count()).select_from(statement.order_by(None).subquery()))
    ).scalar_one()
    rows: Sequence[Any] = (
        (await session.execute(statement.limit(params.page_size).offset(params.offset)))
        .unique()
        .scalars()
        .all()
    )
    return Page[R](
        items=[convert(row) for row in rows],
        total=total,
        page=params.page,
        page_size=params.page_size,
        has_next=params.offset + len(rows) < total,
    )
