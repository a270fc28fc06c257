"""SQL for users. Services call these; nothing else touches the tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.repository import Rows
from keel.core.sql import LIKE_ESCAPE, contains_pattern, try_flush
from keel.features.users.models import User, UserRole
from keel.features.users.schemas import UserFilters, normalise_email

get = Rows(User).get


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == normalise_email(email)))
    return result.unique().scalar_one_or_none()


_ROLES = (
    select(func.aggregate_strings(UserRole.role, ","))
    .where(UserRole.user_id == User.id)
    .scalar_subquery()
    .label("roles")
)
"""A user's roles as one comma-separated string, in the page's own statement."""


def filtered(filters: UserFilters) -> Select[Any]:
    """A page's columns (roles folded into one), oldest first."""
    statement = select(
        User.id,
        User.email,
        User.full_name,
        _ROLES,
        User.is_active,
        User.is_verified,
        User.created_at,
        User.updated_at,
    ).order_by(User.created_at, User.id)
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


async def insert(session: AsyncSession, user: User) -> bool:
    """Add a new user; False if the email is taken (a registration race lost, too)."""
    return await try_flush(session, add=user)


async def save(session: AsyncSession) -> bool:
    """Write the changes made to loaded users; False if a changed email is taken."""
    return await try_flush(session)


async def flush(session: AsyncSession) -> None:
    """Write the changes made to loaded users now (none of which can collide)."""
    await session.flush()


async def delete_unless_referenced(session: AsyncSession, user: User) -> bool:
    """Delete the user; False if business records (orders) refer to the account."""
    return await try_flush(session, delete=user)
