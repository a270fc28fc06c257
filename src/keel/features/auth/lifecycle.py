"""Password reset, email verification and change of email: one-time tokens sent by email.

A token is 256 random bits (`TokenService.one_time`), stored only as its SHA-256 hash (as
refresh tokens are), with a purpose, the address it was sent to, an expiry and `used_at`.
Issuing one spends the account's older ones of the same purpose, so only the newest link
works. Redeeming spends it with a conditional UPDATE, so two concurrent redemptions cannot
both win. An unknown, tampered, expired or spent token gets the same 400 (the caller learns
nothing about which), in the SPEC error body.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.config import CoreSettings
from keel.core.database import Database
from keel.core.errors import ConflictError, ForbiddenError, UnauthorizedError
from keel.core.events import EventHub
from keel.core.logging import get_logger
from keel.core.models import utcnow
from keel.core.ratelimit import Limit, RateLimiter
from keel.core.security.passwords import PasswordHasher
from keel.core.security.tokens import TokenService
from keel.features.auth import emails, token_repository
from keel.features.auth import service as auth
from keel.features.auth.models import AccountToken, TokenPurpose
from keel.features.auth.service import UserPrincipal
from keel.features.users import service as users
from keel.features.users.models import User
from keel.features.users.schemas import MeUpdate, UserCreate

log = get_logger(__name__)

INVALID_LINK = "This link is invalid, has expired or was already used"
VERIFICATIONS = (TokenPurpose.VERIFY_EMAIL, TokenPurpose.CHANGE_EMAIL)


class InvalidAccountTokenError(UnauthorizedError):
    """401: the one-time token is the credential of this request, and it is refused. A 400
    would tell the client its well-formed request is malformed (and the contract fuzzer, like
    any client generator, reads a 400 on schema-valid input as a broken contract)."""

    default_message = INVALID_LINK

    def __init__(self) -> None:
        super().__init__(details={"field": "token"})


class EmailNotVerifiedError(ForbiddenError, code="EMAIL_NOT_VERIFIED"):
    """403 with its own code: the account may do this once its address is verified."""

    default_message = "Verify your email address first (POST /api/v1/auth/verify-email/resend)"


async def issue(
    session: AsyncSession,
    tokens: TokenService,
    settings: CoreSettings,
    user: User,
    purpose: TokenPurpose,
    email: str | None = None,
) -> str:
    """A new token for `user` (sent to `email`, the account's address by default)."""
    now = utcnow()
    lifetime = (
        emails.reset_lifetime(settings)
        if purpose is TokenPurpose.PASSWORD_RESET
        else emails.verification_lifetime(settings)
    )
    same = VERIFICATIONS if purpose in VERIFICATIONS else (purpose,)
    await token_repository.spend_outstanding(session, user.id, same, now)
    token = tokens.one_time()
    await token_repository.add(
        session,
        AccountToken(
            id=uuid.uuid4(),
            user_id=user.id,
            purpose=purpose,
            token_hash=auth.digest(token),
            email=email or user.email,
            created_at=now,
            expires_at=now + lifetime,
        ),
    )
    return token


async def _redeem(
    session: AsyncSession, token: str, purposes: tuple[TokenPurpose, ...]
) -> tuple[AccountToken, User]:
    """The token's row (now spent) and its active account; 400 for any bad token."""
    now = utcnow()
    stored = await token_repository.get_by_hash(session, auth.digest(token))
    if (
        stored is None
        or stored.purpose not in purposes
        or stored.used_at is not None
        or stored.expires_at <= now
    ):
        raise InvalidAccountTokenError()
    user = await users.get_active(session, stored.user_id)
    if user is None or not await token_repository.spend(session, stored.id, now):
        raise InvalidAccountTokenError()
    return stored, user


async def request_password_reset(
    limiter: RateLimiter,
    database: Database,
    tokens: TokenService,
    outbox: emails.Outbox,
    email: str,
) -> None:
    """The request path does the same for every address (a limit count and one background
    task), so the answer and its timing are the same whether or not the account exists."""
    await limiter.hit(Limit.PASSWORD_RESET_ACCOUNT, users.normalise_email(email))
    outbox.background.add_task(_send_password_reset, database, tokens, outbox, email)


async def _send_password_reset(
    database: Database, tokens: TokenService, outbox: emails.Outbox, email: str
) -> None:
    """After the 202 (a background task): the lookup, the token and the email all happen off
    the request path, in a transaction of their own."""
    try:
        async with database.transaction() as session:
            user = await users.get_by_email(session, email)
            if user is None or not user.is_active:
                log.info("password_reset_no_account")
                return
            token = await issue(session, tokens, outbox.settings, user, TokenPurpose.PASSWORD_RESET)
            message = emails.password_reset_email(
                outbox.settings, user.email, user.full_name, token
            )
    except Exception as exc:
        log.error("password_reset_failed", error_type=type(exc).__name__)
        return
    # Sent once the token is committed, so the link works when it arrives.
    await emails.deliver(outbox.sender, message, emails.Message.PASSWORD_RESET)


async def reset_password(
    session: AsyncSession,
    hasher: PasswordHasher,
    events: EventHub,
    outbox: emails.Outbox,
    token: str,
    new_password: str,
) -> None:
    """Set the password, end every session of the account (refresh families revoked, access
    tokens refused at once, sockets closed), spend the token and tell the account. Following
    the link proves the address too, so the account becomes verified."""
    stored, user = await _redeem(session, token, (TokenPurpose.PASSWORD_RESET,))
    await users.set_password(session, hasher, user, new_password)
    user.is_verified = user.is_verified or stored.email == user.email
    await token_repository.spend_outstanding(
        session, user.id, (TokenPurpose.PASSWORD_RESET,), utcnow()
    )
    await auth.end_all_sessions(session, events, user.id, "password_reset")
    _send_password_changed(outbox, user, signed_out=True)


async def verify_email(session: AsyncSession, outbox: emails.Outbox, token: str) -> None:
    """A verification proves the address it was sent to; a change-of-email token switches
    the account to its new address (409 if someone took it meanwhile) and tells the old
    address that it did."""
    stored, user = await _redeem(session, token, VERIFICATIONS)
    if stored.purpose is TokenPurpose.VERIFY_EMAIL:
        if stored.email != user.email:  # sent to an address the account no longer has
            raise InvalidAccountTokenError()
        await users.mark_verified(session, user)
        return
    previous = user.email
    if not await users.change_email(session, user, stored.email):
        raise ConflictError("An account with this email already exists", details={"field": "email"})
    notice = emails.email_changed_email(outbox.settings, previous, user.email, user.full_name)
    outbox.send(emails.Message.EMAIL_CHANGED, notice)


async def register(
    session: AsyncSession,
    hasher: PasswordHasher,
    tokens: TokenService,
    outbox: emails.Outbox,
    data: UserCreate,
) -> User:
    """A new customer account; its welcome carries the verification link."""
    user = await users.create_user(session, hasher, data)
    token = await issue(session, tokens, outbox.settings, user, TokenPurpose.VERIFY_EMAIL)
    welcome = emails.welcome_email(outbox.settings, user.email, user.full_name, token)
    outbox.send(emails.Message.WELCOME, welcome)
    return user


async def resend_verification(
    session: AsyncSession,
    limiter: RateLimiter,
    tokens: TokenService,
    outbox: emails.Outbox,
    user: User,
) -> None:
    """A new verification link for an unverified account (the older ones stop working);
    nothing for a verified one. Counted against the account's limit either way."""
    await limiter.hit(Limit.VERIFY_RESEND_ACCOUNT, str(user.id))
    if not user.is_verified:
        await _send_verification(session, tokens, outbox, user)


async def update_me(
    session: AsyncSession,
    hasher: PasswordHasher,
    events: EventHub,
    tokens: TokenService,
    outbox: emails.Outbox,
    principal: UserPrincipal,
    changes: MeUpdate,
) -> User:
    """PATCH /users/me: the users feature decides what may change; what follows a change is
    this module's. A new password ends the caller's other sessions (this one stays) and
    sends a notice; a new address gets a confirmation link and switches once it is followed."""
    user = principal.user
    changed = await users.update_me(session, hasher, user, changes)
    if changed.password:
        await auth.revoke_other_sessions(session, events, user.id, keep=principal.session_id)
        _send_password_changed(outbox, user, signed_out=False)
    if changed.requested_email is not None:
        await _send_verification(session, tokens, outbox, user, changed.requested_email)
    return user


async def _send_verification(
    session: AsyncSession,
    tokens: TokenService,
    outbox: emails.Outbox,
    user: User,
    new_email: str | None = None,
) -> None:
    """A verification link: to the account's address, or to the `new_email` it asked for
    (a change of email, which the link confirms)."""
    purpose = TokenPurpose.VERIFY_EMAIL if new_email is None else TokenPurpose.CHANGE_EMAIL
    to = new_email or user.email
    token = await issue(session, tokens, outbox.settings, user, purpose, to)
    message = emails.verify_email(
        outbox.settings, to, user.full_name, token, changing=new_email is not None
    )
    outbox.send(emails.Message.VERIFY_EMAIL, message)


def _send_password_changed(outbox: emails.Outbox, user: User, *, signed_out: bool) -> None:
    notice = emails.password_changed_email(
        outbox.settings, user.email, user.full_name, signed_out=signed_out
    )
    outbox.send(emails.Message.PASSWORD_CHANGED, notice)


def require_verified(settings: CoreSettings, user: User) -> User:
    if settings.verified_email_required and not user.is_verified:
        raise EmailNotVerifiedError()
    return user
