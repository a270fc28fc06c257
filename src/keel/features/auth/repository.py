"""SQL for login sessions and refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.reads import PreparedSelect, Reads
from keel.core.repository import Rows
from keel.core.sql import update_where
from keel.features.auth.models import AccountToken, AuthSession, RefreshToken
from keel.features.users.models import User, UserRole

_refresh_tokens = Rows(RefreshToken)


async def add(session: AsyncSession, *rows: AuthSession | RefreshToken) -> None:
    session.add_all(rows)
    await session.flush()


async def get_refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    return await _refresh_tokens.find(session, RefreshToken.token_hash == token_hash)


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
    unspent = and_(model.id == token_id, model.used_at.is_(None))
    return bool(await update_where(session, model, unspent, used_at=now))


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


# Built once: on the hot path of every authenticated request, constructing the statements and
# their cache keys cost more than the round trip itself.
_users, _sessions, _roles = User.__table__, AuthSession.__table__, UserRole.__table__
# What every principal lookup checks: the token's session is live (not revoked, not expired)
# and belongs to the token's user, who is active.
_LIVE_SESSION = and_(
    _sessions.c.user_id == _users.c.id,
    _sessions.c.id == bindparam("session_id"),
    _sessions.c.revoked_at.is_(None),
    _sessions.c.expires_at > bindparam("now"),
)
_ACTIVE_USER = and_(_users.c.id == bindparam("user_id"), _users.c.is_active.is_(True))

_ACTIVE_USER_IN_SESSION = select(User).join(AuthSession, _LIVE_SESSION).where(_ACTIVE_USER)

CALLER_COLUMNS = (
    "id",
    "email",
    "full_name",
    "is_active",
    "is_verified",
    "created_at",
    "updated_at",
)
_CALLER_IN_SESSION = PreparedSelect(
    select(*(_users.c[name] for name in CALLER_COLUMNS), _roles.c.role)
    .select_from(
        _users.join(_sessions, _LIVE_SESSION).outerjoin(_roles, _roles.c.user_id == _users.c.id)
    )
    .where(_ACTIVE_USER)
)


async def active_user_in_session(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
) -> User | None:
    """The ORM user, with roles, if active and the session is live: one statement."""
    result = await session.execute(
        _ACTIVE_USER_IN_SESSION, {"user_id": user_id, "session_id": session_id, "now": now}
    )
    return result.unique().scalar_one_or_none()


async def caller_in_session(
    reads: Reads, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
) -> list[Any]:
    """The same check without the ORM or a session: one constant statement run on the driver
    (`core/reads.py`). One named row per role, with the caller's columns (`CALLER_COLUMNS`)
    and `role` (None for a user with no role); no rows when the check fails."""
    return await reads.all(_CALLER_IN_SESSION, user_id=user_id, session_id=session_id, now=now)
