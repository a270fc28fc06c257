"""Login, refresh-token rotation with reuse detection, logout, and session revocation.

A login opens a session (a refresh-token family). Each refresh spends the presented token and
issues the next one in the same family. Presenting a spent token again means it was copied:
the whole family is revoked, and that revocation is committed before the 401 goes out, so it
survives the error. Access tokens name their session, so revocation stops them at once too.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.database import after_commit, keep_changes
from keel.core.errors import UnauthorizedError
from keel.core.events import EventHub, sessions_ended
from keel.core.logging import get_logger
from keel.core.models import utcnow
from keel.core.ratelimit import Limit, RateLimiter
from keel.core.reads import Reads
from keel.core.security.passwords import PasswordHasher
from keel.core.security.tokens import InvalidTokenError, TokenService
from keel.features.auth import repository
from keel.features.auth.models import AuthSession, RefreshToken
from keel.features.auth.schemas import TokenPair
from keel.features.users import service as users
from keel.features.users.models import Role, User

log = get_logger(__name__)

BAD_CREDENTIALS = "Invalid email or password"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as read in the token check: the user's columns and roles, no ORM
    object. Enough to answer `/users/me` (it has `UserResponse`'s fields) and to decide on
    roles; an endpoint that changes the user loads the ORM `User` instead (`CurrentUser`).
    Built by name from the token check's `CALLER_COLUMNS`: a field added here is added there."""

    id: uuid.UUID
    email: str
    full_name: str
    is_active: bool
    is_verified: bool
    roles: tuple[Role, ...]
    created_at: datetime
    updated_at: datetime

    def has_role(self, role: Role) -> bool:
        return role in self.roles


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller and the login session the access token belongs to."""

    user: Caller
    session_id: uuid.UUID
    expires_at: datetime  # of the access token that authenticated this call


@dataclass(frozen=True, slots=True)
class UserPrincipal:
    """As `Principal`, with the ORM `User`: for endpoints that change the caller's account."""

    user: User
    session_id: uuid.UUID
    expires_at: datetime


def digest(token: str) -> str:
    """How every token Keel must recognise later is stored: its SHA-256, never itself."""
    return hashlib.sha256(token.encode()).hexdigest()


async def login(
    session: AsyncSession,
    hasher: PasswordHasher,
    tokens: TokenService,
    limiter: RateLimiter,
    email: str,
    password: str,
) -> TokenPair:
    """Same 401, and about the same time, for an unknown email and a wrong password.

    The per-account limit counts failed attempts only: it exists against password guessing,
    and a client that logs in often with the right password is not guessing. Once an account
    has used up its failures, even the right password waits (the guesser cannot tell).
    """
    account_key = users.normalise_email(email)
    await limiter.check(Limit.LOGIN_ACCOUNT, account_key)
    user = await users.get_by_email(session, email)
    valid, upgraded_hash = await hasher.verify(password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        await limiter.hit(Limit.LOGIN_ACCOUNT, account_key)
        raise UnauthorizedError(BAD_CREDENTIALS)
    if upgraded_hash is not None:
        await users.replace_password_hash(session, user, upgraded_hash)
    return await _open_session(session, tokens, user)


async def _open_session(session: AsyncSession, tokens: TokenService, user: User) -> TokenPair:
    now = utcnow()
    family = AuthSession(id=uuid.uuid4(), user_id=user.id, expires_at=now + tokens.refresh_lifetime)
    await repository.add(session, family)
    return await _issue_pair(session, tokens, user.id, family.id)


async def _issue_pair(
    session: AsyncSession, tokens: TokenService, user_id: uuid.UUID, session_id: uuid.UUID
) -> TokenPair:
    now = utcnow()
    access = tokens.issue("access", subject=user_id, session_id=session_id, now=now)
    refresh = tokens.issue("refresh", subject=user_id, session_id=session_id, now=now)
    await repository.add(
        session,
        RefreshToken(
            id=refresh.claims.token_id,
            session_id=session_id,
            token_hash=digest(refresh.token),
            created_at=now,
            expires_at=refresh.claims.expires_at,
        ),
    )
    return TokenPair(
        access_token=access.token,
        refresh_token=refresh.token,
        expires_in=int(tokens.access_lifetime.total_seconds()),
    )


async def refresh(
    session: AsyncSession, tokens: TokenService, events: EventHub, refresh_token: str
) -> TokenPair:
    claims = tokens.decode(refresh_token, "refresh")
    stored = await repository.get_refresh_token(session, digest(refresh_token))
    if stored is None or stored.session_id != claims.session_id:
        raise InvalidTokenError()
    now = utcnow()
    if not await repository.spend(session, stored.id, now):
        await _revoke_family_for_reuse(session, events, claims.subject, claims.session_id)
        # The revocation is the point of this 401: it commits, and the sockets close.
        raise keep_changes(
            session, InvalidTokenError("Refresh token already used; the session has been revoked")
        )
    family = await repository.get_session(session, claims.session_id)
    user = await users.get_active(session, claims.subject)
    if family is None or family.revoked_at is not None or family.expires_at <= now:
        raise InvalidTokenError("Session ended")
    if user is None:
        raise InvalidTokenError()
    return await _issue_pair(session, tokens, user.id, family.id)


async def _revoke_family_for_reuse(
    session: AsyncSession, events: EventHub, user_id: uuid.UUID, session_id: uuid.UUID
) -> None:
    await repository.revoke_sessions(session, user_id, utcnow(), "refresh_reuse", only=session_id)
    _close_sockets_after_commit(session, events, user_id, "refresh_reuse", only=session_id)
    log.warning("refresh_token_reuse", user_id=str(user_id), session_id=str(session_id))


async def logout(
    session: AsyncSession, tokens: TokenService, events: EventHub, refresh_token: str
) -> None:
    """Revoke the token's whole session (its WebSockets close, in every process).
    Idempotent for a token that was already spent."""
    claims = tokens.decode(refresh_token, "refresh")
    stored = await repository.get_refresh_token(session, digest(refresh_token))
    if stored is None:
        raise InvalidTokenError()
    await repository.revoke_sessions(
        session, claims.subject, utcnow(), "logout", only=claims.session_id
    )
    _close_sockets_after_commit(session, events, claims.subject, "logout", only=claims.session_id)


async def revoke_other_sessions(
    session: AsyncSession, events: EventHub, user_id: uuid.UUID, keep: uuid.UUID
) -> None:
    await repository.revoke_sessions(session, user_id, utcnow(), "password_changed", keep=keep)
    _close_sockets_after_commit(session, events, user_id, "password_changed", keep=keep)


async def end_all_sessions(
    session: AsyncSession, events: EventHub, user_id: uuid.UUID, reason: str
) -> None:
    """Every session of the account ends: its refresh tokens and access tokens stop at once
    (as a logout's do), and its sockets close once this commits."""
    await repository.revoke_sessions(session, user_id, utcnow(), reason)
    _close_sockets_after_commit(session, events, user_id, reason)


def _close_sockets_after_commit(
    session: AsyncSession,
    events: EventHub,
    user_id: uuid.UUID,
    reason: str,
    *,
    only: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> None:
    """A revoked session's access tokens stop at once; so must its open sockets, which
    authenticated only when they connected."""
    event = sessions_ended(user_id, reason, only=only, keep=keep)
    after_commit(session, lambda: events.publish(event))


async def authenticate(reads: Reads, tokens: TokenService, access_token: str) -> Principal:
    """The caller behind an access token; 401 if the user or session is no longer valid.

    One constant statement (the user's columns and roles, joined with the live session) run
    on the driver, so a revoked, expired or deactivated login stops at once, without a
    session or an ORM object."""
    claims = tokens.decode(access_token, "access")
    rows = await repository.caller_in_session(reads, claims.subject, claims.session_id, utcnow())
    if not rows:
        raise InvalidTokenError()
    columns = {name: getattr(rows[0], name) for name in repository.CALLER_COLUMNS}
    roles = tuple(sorted(Role(row.role) for row in rows if row.role is not None))
    caller = Caller(**columns, roles=roles)
    return Principal(user=caller, session_id=claims.session_id, expires_at=claims.expires_at)


async def authenticate_user(
    session: AsyncSession, tokens: TokenService, access_token: str
) -> UserPrincipal:
    """As `authenticate`, loading the ORM `User` (with its roles) in the same one statement."""
    claims = tokens.decode(access_token, "access")
    user = await repository.active_user_in_session(
        session, claims.subject, claims.session_id, utcnow()
    )
    if user is None:
        raise InvalidTokenError()
    return UserPrincipal(user=user, session_id=claims.session_id, expires_at=claims.expires_at)
