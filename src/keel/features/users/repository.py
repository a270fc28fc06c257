"""SQL for users. Services call these; nothing else touches the tables."""

from __future__ import annotations

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.repository import Rows
from keel.core.sql import LIKE_ESCAPE, contains_pattern
from keel.features.users.models import User, UserRole
from keel.features.users.schemas import UserFilters, normalise_email

_rows = Rows(User)
get = _rows.get
add = _rows.add
delete = _rows.delete


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == normalise_email(email)))
    return result.unique().scalar_one_or_none()


def filtered(filters: UserFilters) -> Select[User]:
    statement = select(User).order_by(User.created_at, User.id)
    if filters.email:
        pattern = contains_pattern(normalise_email(filters.email))
        statement = statement.where(User.email.like(pattern, escape=LIKE_ESCAPE))
    if filters.role is not None:
        statement = statement.where(
            exists().where(UserRole.user_id == User.id, UserRole.role == filters.role)
        )
    if filters.is_active is not None:
        statement = statement.where(User.is_active.is_(filters.is_active))
    return statement
