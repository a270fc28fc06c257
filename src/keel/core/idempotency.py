"""Idempotency keys at the route edge: the same key with the same request answers once.

A route takes `IdempotentCall` and hands it the work: `await call.run(owner_id, work)`. The
key is claimed first (committed at once, so concurrent requests see it), with a lease: the
longest the work can take. Then:

- a stored answer is replayed, marked `Idempotent-Replayed: true`, body and status as first
  sent (the `request_id` inside is the first request's);
- a key still in flight answers 409 at once (Stripe's behaviour): the client retries later;
- the same key with a different request (method, path or body) than the answered one is
  refused with 422;
- a key whose holder died (its lease ran out with no answer) is taken over and runs again.

The work's result is stored in the request's own transaction, so it commits with the change.
An `AppError` the request itself decided (a 4xx such as a decline) is stored and replayed
too, except 409 and 429: those describe the moment (another payment in flight, a rate
limit), not the request, so the key is released and a retry runs again. Any other ending
(a 5xx, an unexpected exception, cancellation) releases the key as well. Keys are scoped per
owner and kept for 24 hours by default. Fingerprints are HMACs with the server secret, so a
stored fingerprint reveals nothing about the request (card numbers included).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Header
from pydantic import BaseModel
from sqlalchemy import JSON, String, UniqueConstraint, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request
from starlette.responses import JSONResponse

from keel.core.database import (
    DbSession,
    commit_now,
    discard_changes,
    keep_changes,
    keeps_changes,
)
from keel.core.errors import AppError, ConflictError, ValidationFailedError
from keel.core.exception_handlers import error_body
from keel.core.logging import get_logger
from keel.core.models import Base, UUIDPrimaryKey, str_enum, utcnow
from keel.core.sql import try_flush, update_where
from keel.core.state import from_state

log = get_logger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
REPLAY_HEADERS: dict[str, Any] = {  # for a route's OpenAPI responses
    REPLAYED_HEADER: {
        "description": "Sent as `true` when this is the stored answer of an earlier request "
        "with the same Idempotency-Key (status and body as first sent)",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
# Printable ASCII, as header values should be: no NUL byte (PostgreSQL refuses them in text)
# or other control character reaches a column.
KEY_PATTERN = r"^[ -~]+$"
# Answers that say something about the moment rather than the request: never replayed.
MOMENTARY_STATUSES = frozenset({409, 429})


class KeyState(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class IdempotencyKey(UUIDPrimaryKey, Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("owner_id", "key"),)

    owner_id: Mapped[uuid.UUID]
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[KeyState] = mapped_column(str_enum(KeyState, 20))
    status_code: Mapped[int | None]
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # The request working under the key, until its lease runs out (None once answered).
    holder: Mapped[uuid.UUID | None]
    locked_until: Mapped[datetime | None]


@dataclass(frozen=True, slots=True)
class Replay:
    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Lease:
    """This request holds the key: `holder` fences every later write to the row."""

    owner_id: uuid.UUID
    key: str
    holder: uuid.UUID


def in_flight() -> ConflictError:
    return ConflictError(
        "A request with this Idempotency-Key is still in progress; retry once it has finished",
        details={"reason": "idempotency_key_in_use"},
    )


DEFAULT_LEASE = timedelta(seconds=30)
"""How long a key stays claimed when no enabled feature needs longer (`FeatureResources.
idempotency_lease`): the database work of one request, with room to spare."""


class IdempotencyStore:
    def __init__(self, secret: str, ttl: timedelta, lease: timedelta) -> None:
        self._secret = secret.encode()
        self._ttl = ttl
        self.lease = lease

    def fingerprint(self, *parts: str) -> str:
        return hmac.new(self._secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()

    async def claim(
        self, session: AsyncSession, owner_id: uuid.UUID, key: str, fingerprint: str
    ) -> Lease | Replay:
        """A Lease if this request now holds the key (committed); a Replay if it was answered.

        Never waits: a key another live request holds is a 409 at once.
        """
        now = utcnow()
        found = await self._find(session, owner_id, key)
        if found is not None and found.expires_at <= now:
            await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == found.id))
            found = None
        if found is None:
            lease = Lease(owner_id, key, uuid.uuid4())
            if await self._insert(session, lease, fingerprint, now):
                await commit_now(session)  # concurrent requests with this key meet the claim
                return lease
            found = await self._find(session, owner_id, key)  # another request inserted first
            if found is None:
                raise in_flight()  # ... and was released in between: a retry will run
        if found.state != KeyState.COMPLETED or found.status_code is None:
            # Rows claimed before leases existed have none: their lease counts from creation.
            lease_ends = found.locked_until or found.created_at + self.lease
            if lease_ends <= now:
                return await self._take_over(session, found, fingerprint, now)
            raise in_flight()
        if found.fingerprint != fingerprint:
            raise ValidationFailedError.field(
                ("header", "idempotency-key"),  # spelt as FastAPI spells it in its own 422s
                "already used with a different request body",
                "idempotency_mismatch",
                message="This Idempotency-Key was used with a different request",
            )
        return Replay(found.status_code, found.body or {})

    async def _take_over(
        self, session: AsyncSession, found: IdempotencyKey, fingerprint: str, now: datetime
    ) -> Lease:
        """The holder's lease ran out without an answer (it crashed or hung): run again."""
        lease = Lease(found.owner_id, found.key, uuid.uuid4())
        taken = await update_where(
            session,
            IdempotencyKey,
            IdempotencyKey.id == found.id,
            IdempotencyKey.state == KeyState.IN_PROGRESS,
            IdempotencyKey.holder == found.holder,
            holder=lease.holder,
            locked_until=now + self.lease,
            fingerprint=fingerprint,
        )
        if not taken:
            raise in_flight()  # another retry took it over first
        await commit_now(session)
        log.warning("idempotency_key_taken_over", key_id=str(found.id))
        return lease

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
        self, session: AsyncSession, lease: Lease, fingerprint: str, now: datetime
    ) -> bool:
        row = IdempotencyKey(
            owner_id=lease.owner_id,
            key=lease.key,
            fingerprint=fingerprint,
            state=KeyState.IN_PROGRESS,
            created_at=now,
            expires_at=now + self._ttl,
            holder=lease.holder,
            locked_until=now + self.lease,
        )
        return await try_flush(session, add=row)

    async def complete(
        self, session: AsyncSession, lease: Lease, status_code: int, body: dict[str, Any]
    ) -> None:
        """Store the answer; in the caller's transaction, so it commits with the change."""
        await update_where(
            session,
            IdempotencyKey,
            *self._held(lease),
            state=KeyState.COMPLETED,
            status_code=status_code,
            body=body,
            holder=None,
            locked_until=None,
        )

    async def release(self, session: AsyncSession, lease: Lease) -> None:
        """Forget the key, so a retry runs again; in the caller's transaction (raise
        through `keep_changes` to commit it). Only while this request still holds it."""
        await session.execute(delete(IdempotencyKey).where(*self._held(lease)))

    def _held(self, lease: Lease) -> tuple[Any, ...]:
        return (
            IdempotencyKey.owner_id == lease.owner_id,
            IdempotencyKey.key == lease.key,
            IdempotencyKey.holder == lease.holder,
        )


def _canonical_body(raw: bytes) -> str:
    """JSON bodies compare by content (key order and spacing do not matter)."""
    try:
        return json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return raw.decode("utf-8", "replace")


def _momentary(error: AppError) -> bool:
    return error.status_code >= 500 or error.status_code in MOMENTARY_STATUSES


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """One request's Idempotency-Key and the way to answer it at most once (see `run`)."""

    _store: IdempotencyStore
    _session: AsyncSession
    _request: Request
    key: str

    async def run(
        self, owner_id: uuid.UUID, work: Callable[[], Awaitable[BaseModel]]
    ) -> JSONResponse:
        """Run `work` once per key and owner, and answer 200 with what it returns.

        A stored answer is replayed instead; an `AppError` from `work` is stored (unless
        momentary, see the module docstring) and raised; anything else releases the key.
        """
        request = self._request
        fingerprint = self._store.fingerprint(
            request.method, request.url.path, _canonical_body(await request.body())
        )
        claimed = await self._store.claim(self._session, owner_id, self.key, fingerprint)
        if isinstance(claimed, Replay):
            return JSONResponse(
                claimed.body, status_code=claimed.status_code, headers={REPLAYED_HEADER: "true"}
            )
        session = self._session
        try:
            result = await work()
        except BaseException as error:
            # The key's outcome commits with the error; the work's changes only if the work
            # itself raised through `keep_changes` (a refund record, a released claim).
            if not keeps_changes(session, error):
                await discard_changes(session)
            if isinstance(error, AppError) and not _momentary(error):
                await self._store.complete(session, claimed, error.status_code, error_body(error))
            else:
                await self._store.release(session, claimed)
            keep_changes(session, error)
            raise
        body = result.model_dump(mode="json")
        await self._store.complete(self._session, claimed, 200, body)
        return JSONResponse(body)


async def idempotent_request(
    request: Request,
    session: DbSession,
    store: Annotated[IdempotencyStore, Depends(from_state("idempotency", IdempotencyStore))],
    idempotency_key: Annotated[str, Header(min_length=1, max_length=255, pattern=KEY_PATTERN)],
) -> IdempotentRequest:
    return IdempotentRequest(store, session, request, idempotency_key)


IdempotentCall = Annotated[IdempotentRequest, Depends(idempotent_request)]
