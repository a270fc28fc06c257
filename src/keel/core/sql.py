"""Small SQL helpers every repository may use."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

LIKE_ESCAPE = "\\"


def contains_pattern(text: str) -> str:
    """A case-folded `LIKE` pattern matching `text` anywhere, with `%` and `_` taken literally.

    Use with `.like(pattern, escape=LIKE_ESCAPE)` on a lower-cased column.
    """
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def try_flush(
    session: AsyncSession, *, add: object | None = None, delete: object | None = None
) -> bool:
    """Write the session's pending changes (with `add` added or `delete` deleted first);
    False if a constraint refused them: a unique value taken, a row other rows still refer to.

    In a savepoint, so the refusal undoes only this write and the request's transaction stays
    usable, and a race lost to a concurrent request is caught as surely as a value already
    there. The repository turns False into what it means ("SKU taken"); the service into the
    error.
    """
    try:
        async with session.begin_nested():
            if add is not None:
                session.add(add)
            if delete is not None:
                await session.delete(delete)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def update_where(
    session: AsyncSession, model: type[Any], *conditions: ColumnElement[bool], **values: Any
) -> int:
    """`UPDATE model SET values WHERE conditions`: how many rows it changed.

    The answer of a conditional update, which is how repositories settle races: 0 means no
    row was in the state the conditions name (a token already spent, a job's lease lost,
    stock already taken), because another writer got there first.
    """
    result = await session.execute(update(model).where(*conditions).values(**values))
    return int(result.rowcount)  # type: ignore[attr-defined]
