"""Idempotency keys: the same key with the same request replays the first answer.

A key is claimed (committed at once, so concurrent requests see it) before any side effect; a
second request with that key waits for the first to finish and replays its stored answer, a
request with the same key but a different body is refused (422). Keys are scoped per user and
expire (24 hours by default). Request fingerprints are HMACs with the server secret, so a
stored fingerprint reveals nothing about the request (card numbers included).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from keel.core.errors import ConflictError, ValidationFailedError
from keel.core.models import Base, UUIDPrimaryKey, utcnow

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.05


class IdempotencyKey(UUIDPrimaryKey, Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("owner_id", "key"),)

    owner_id: Mapped[uuid.UUID]
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None]
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


@dataclass(frozen=True, slots=True)
class Replay:
    status_code: int
    body: dict[str, Any]


class IdempotencyStore:
    def __init__(self, secret: str, ttl: timedelta) -> None:
        self._secret = secret.encode()
        self._ttl = ttl

    def fingerprint(self, *parts: str) -> str:
        return hmac.new(self._secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()

    async def claim(
        self, session: AsyncSession, owner_id: uuid.UUID, key: str, fingerprint: str
    ) -> Replay | None:
        """None if this request now owns the key (committed); a Replay if it was answered."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            found = await self._find(session, owner_id, key)
            if found is not None and found.expires_at <= utcnow():
                await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == found.id))
                found = None
            if found is None and await self._insert(session, owner_id, key, fingerprint):
                await session.commit()
                return None
            if found is not None:
                if found.fingerprint != fingerprint:
                    raise ValidationFailedError(
                        "This Idempotency-Key was used with a different request",
                        errors=[
                            {
                                "loc": ["header", "Idempotency-Key"],
                                "msg": "already used with a different request body",
                                "type": "idempotency_mismatch",
                            }
                        ],
                    )
                if found.state == COMPLETED and found.status_code is not None:
                    return Replay(found.status_code, found.body or {})
            await session.rollback()  # see the other request's commit on the next look
            if time.monotonic() > deadline:
                raise ConflictError("A request with this Idempotency-Key is still in progress")
            await asyncio.sleep(POLL_SECONDS)

    async def _find(
        self, session: AsyncSession, owner_id: uuid.UUID, key: str
    ) -> IdempotencyKey | None:
        result = await session.execute(
            select(IdempotencyKey)
            .where(IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == key)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def _insert(
        self, session: AsyncSession, owner_id: uuid.UUID, key: str, fingerprint: str
    ) -> bool:
        now = utcnow()
        row = IdempotencyKey(
            owner_id=owner_id,
            key=key,
            fingerprint=fingerprint,
            state=IN_PROGRESS,
            created_at=now,
            expires_at=now + self._ttl,
        )
        try:
            async with session.begin_nested():
                session.add(row)
                await session.flush()
        except IntegrityError:
            return False
        return True

    async def complete(
        self,
        session: AsyncSession,
        owner_id: uuid.UUID,
        key: str,
        status_code: int,
        body: dict[str, Any],
    ) -> None:
        """Store the answer; in the caller's transaction, so it commits with the change."""
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == key)
            .values(state=COMPLETED, status_code=status_code, body=body)
        )

    async def release(self, session: AsyncSession, owner_id: uuid.UUID, key: str) -> None:
        """Forget the key after a transient failure, so a retry runs again (committed)."""
        await session.rollback()
        await session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == key
            )
        )
        await session.commit()
