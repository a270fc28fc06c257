"""SQL for one-time account tokens (password reset, verification, change of email)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.repository import Rows
from keel.features.auth.models import AccountToken, TokenPurpose
from keel.features.auth.repository import spend_once

_rows = Rows(AccountToken)
add = _rows.add


async def get_by_hash(session: AsyncSession, token_hash: str) -> AccountToken | None:
    return await _rows.find(session, AccountToken.token_hash == token_hash)


async def spend(session: AsyncSession, token_id: uuid.UUID, now: datetime) -> bool:
    """Mark one token used; False if it already was (a reuse, or a lost race)."""
    return await spend_once(session, AccountToken, token_id, now)


async def spend_outstanding(
    session: AsyncSession, user_id: uuid.UUID, purposes: tuple[TokenPurpose, ...], now: datetime
) -> None:
    """Spend every unused token of the account for these purposes: only the newest link
    works, and none survives the change it was for."""
    await session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose.in_(purposes),
            AccountToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
