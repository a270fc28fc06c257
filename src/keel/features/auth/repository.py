"""SQL for login sessions and refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.features.auth.models import AccountToken, AuthSession, RefreshToken
from keel.features.users.models import User


async def add(session: AsyncSession, *rows: AuthSession | RefreshToken) -> None:
    session.add_all(rows)
    await session.flush()


async def get_refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    result = await session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash)
    )
    return result.scalar_one_or_none()


async def get_session(session: AsyncSession, session_id: uuid.UUID) -> AuthSession | None:
    return await session.get(AuthSession, session_id)


async def spend(session: AsyncSession, token_id: uuid.UUID, now: datetime) -> bool:
    """Mark a refresh token used; False if it already was (a reuse, or a lost race)."""
    return await spend_once(session, RefreshToken, token_id, now)


async def spend_once(
    session: AsyncSession,
    model: type[RefreshToken] | type[AccountToken],
    token_id: uuid.UUID,
    now: datetime,
) -> bool:
    """Set `used_at` on one unspent token row: of two concurrent spenders, one wins."""
    result = await session.execute(
        update(model).where(model.id == token_id, model.used_at.is_(None)).values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_sessions(
    session: AsyncSession,
    user_id: uuid.UUID,
    now: datetime,
    reason: str,
    *,
    only: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> None:
    statement = update(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    if only is not None:
        statement = statement.where(AuthSession.id == only)
    if keep is not None:
        statement = statement.where(AuthSession.id != keep)
    await session.execute(statement.values(revoked_at=now, revoked_reason=reason))


# Built once: on the hot path of every authenticated request, constructing the statement and
# its cache key cost more than the round trip itself.
_ACTIVE_USER_IN_SESSION = (
    select(User)
    .join(
        AuthSession,
        and_(
            AuthSession.user_id == User.id,
            AuthSession.id == bindparam("session_id"),
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > bindparam("now"),
        ),
    )
    .where(User.id == bindparam("user_id"), User.is_active.is_(True))
)


async def active_user_in_session(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
) -> User | None:
    """The user, with roles, if active and the session is live: one statement per request."""
    result = await session.execute(
        _ACTIVE_USER_IN_SESSION, {"user_id": user_id, "session_id": session_id, "now": now}
    )
    return result.unique().scalar_one_or_none()
