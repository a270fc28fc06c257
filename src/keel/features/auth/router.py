from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Form, status
from pydantic import ValidationError

from keel.core.dependencies import (
    AppDatabase,
    DbSession,
    Events,
    Hasher,
    Limiter,
    Tokens,
    rate_limit,
)
from keel.core.errors import ValidationFailedError
from keel.core.ratelimit import Limit
from keel.features.auth import lifecycle, service
from keel.features.auth.dependencies import AccountMail, CurrentUser
from keel.features.auth.schemas import (
    Accepted,
    LoginRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenForm,
    TokenPair,
    VerifyEmailRequest,
)
from keel.features.users.schemas import UserCreate, UserResponse

router = APIRouter(prefix="/auth", tags=["auth"])
Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Any]])


def _post(
    path: str, summary: str, limit: Limit | None, status_code: int | None = None
) -> Callable[[Endpoint], Endpoint]:
    """Every auth endpoint is a POST, counted against a per-client-address `limit` before
    anything else runs (the resend alone has none: it needs a login and counts per account)."""
    dependencies = [Depends(rate_limit(limit))] if limit is not None else []
    return router.post(path, summary=summary, status_code=status_code, dependencies=dependencies)


@_post(
    "/register",
    "Create a customer account (a welcome email follows)",
    Limit.REGISTER_IP,
    status.HTTP_201_CREATED,
)
async def register(
    body: UserCreate, session: DbSession, hasher: Hasher, tokens: Tokens, outbox: AccountMail
) -> UserResponse:
    """The welcome email carries the verification link; it is sent after the response."""
    user = await lifecycle.register(session, hasher, tokens, outbox, body)
    return UserResponse.model_validate(user)


@_post("/login", "Sign in with email and password: an access and a refresh token", Limit.LOGIN_IP)
async def login(
    body: LoginRequest, session: DbSession, hasher: Hasher, tokens: Tokens, limiter: Limiter
) -> TokenPair:
    return await service.login(session, hasher, tokens, limiter, body.email, body.password)


@_post(
    "/token", "Login with an OAuth2 password form (the Authorize button in /docs)", Limit.LOGIN_IP
)
async def token(
    form: Annotated[TokenForm, Form()],
    session: DbSession,
    hasher: Hasher,
    tokens: Tokens,
    limiter: Limiter,
) -> TokenPair:
    try:
        body = LoginRequest(email=form.username, password=form.password)
    except ValidationError as exc:
        raise ValidationFailedError.from_pydantic(
            exc.errors(),
            prefix=("body",),
            names={"email": "username"},  # the form's names
        ) from None
    return await service.login(session, hasher, tokens, limiter, body.email, body.password)


@_post("/refresh", "Trade a refresh token for a new pair (the old one is spent)", Limit.REFRESH_IP)
async def refresh(
    body: RefreshRequest, session: DbSession, tokens: Tokens, events: Events
) -> TokenPair:
    return await service.refresh(session, tokens, events, body.refresh_token)


@_post(
    "/logout",
    "End the session a refresh token belongs to (its access tokens stop at once)",
    Limit.REFRESH_IP,
    status.HTTP_204_NO_CONTENT,
)
async def logout(body: RefreshRequest, session: DbSession, tokens: Tokens, events: Events) -> None:
    await service.logout(session, tokens, events, body.refresh_token)


RESET_ACCEPTED = "If an account uses this address, a link to reset its password is on its way."
RESEND_ACCEPTED = "If the address still needs verifying, a new link is on its way."


@_post(
    "/password-reset",
    "Ask for a password-reset email (202 whether or not the account exists)",
    Limit.PASSWORD_RESET_IP,
    status.HTTP_202_ACCEPTED,
)
async def request_password_reset(
    body: PasswordResetRequest,
    limiter: Limiter,
    database: AppDatabase,
    tokens: Tokens,
    outbox: AccountMail,
) -> Accepted:
    """The request path does the same for every address (two limit counts, one background
    task); looking the account up, making the token and sending happen after the response."""
    await lifecycle.request_password_reset(limiter, database, tokens, outbox, body.email)
    return Accepted(message=RESET_ACCEPTED)


@_post(
    "/password-reset/confirm",
    "Set a new password with the emailed token; every session of the account ends",
    Limit.ACCOUNT_TOKEN_IP,
    status.HTTP_204_NO_CONTENT,
)
async def confirm_password_reset(
    body: PasswordResetConfirm,
    session: DbSession,
    hasher: Hasher,
    events: Events,
    outbox: AccountMail,
) -> None:
    await lifecycle.reset_password(session, hasher, events, outbox, body.token, body.new_password)


@_post(
    "/verify-email",
    "Verify an email address (or confirm a change of email) with the emailed token",
    Limit.ACCOUNT_TOKEN_IP,
    status.HTTP_204_NO_CONTENT,
)
async def verify_email(body: VerifyEmailRequest, session: DbSession, outbox: AccountMail) -> None:
    await lifecycle.verify_email(session, outbox, body.token)


@_post(
    "/verify-email/resend",
    "Send the caller a new verification email (nothing is sent if already verified)",
    None,
    status.HTTP_202_ACCEPTED,
)
async def resend_verification(
    user: CurrentUser, session: DbSession, limiter: Limiter, tokens: Tokens, outbox: AccountMail
) -> Accepted:
    await lifecycle.resend_verification(session, limiter, tokens, outbox, user)
    return Accepted(message=RESEND_ACCEPTED)
