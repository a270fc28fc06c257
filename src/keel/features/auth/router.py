from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Form, status
from pydantic import ValidationError

from keel.core.dependencies import (
    AppDatabase,
    AppSettings,
    DbSession,
    Events,
    Hasher,
    Limiter,
    Mailer,
    Tokens,
    rate_limit,
)
from keel.core.errors import ValidationFailedError
from keel.core.ratelimit import Limit
from keel.features.auth import emails, lifecycle, service
from keel.features.auth.dependencies import CurrentUser
from keel.features.auth.models import TokenPurpose
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
from keel.features.users import service as users
from keel.features.users.schemas import UserCreate, UserResponse

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register",
    summary="Create a customer account (a welcome email follows)",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(rate_limit(Limit.REGISTER_IP))],
)
async def register(
    body: UserCreate,
    session: DbSession,
    hasher: Hasher,
    tokens: Tokens,
    settings: AppSettings,
    mailer: Mailer,
    background: BackgroundTasks,
) -> UserResponse:
    """The welcome email carries the verification link; it is sent after the response."""
    user = await users.create_user(session, hasher, body)
    token = await lifecycle.issue(session, tokens, settings, user, TokenPurpose.VERIFY_EMAIL)
    welcome = emails.welcome_email(settings, user.email, user.full_name, token)
    background.add_task(emails.deliver, mailer, welcome, emails.Message.WELCOME)
    return UserResponse.model_validate(user)


@router.post(
    "/login",
    summary="Sign in with email and password: an access and a refresh token",
    dependencies=[Depends(rate_limit(Limit.LOGIN_IP))],
)
async def login(
    body: LoginRequest, session: DbSession, hasher: Hasher, tokens: Tokens, limiter: Limiter
) -> TokenPair:
    return await service.login(session, hasher, tokens, limiter, body.email, body.password)


@router.post(
    "/token",
    summary="Login with an OAuth2 password form (the Authorize button in /docs)",
    dependencies=[Depends(rate_limit(Limit.LOGIN_IP))],
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


@router.post(
    "/refresh",
    summary="Trade a refresh token for a new pair (the old one is spent)",
    dependencies=[Depends(rate_limit(Limit.REFRESH_IP))],
)
async def refresh(
    body: RefreshRequest, session: DbSession, tokens: Tokens, events: Events
) -> TokenPair:
    return await service.refresh(session, tokens, events, body.refresh_token)


@router.post(
    "/logout",
    summary="End the session a refresh token belongs to (its access tokens stop at once)",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(rate_limit(Limit.REFRESH_IP))],
)
async def logout(body: RefreshRequest, session: DbSession, tokens: Tokens, events: Events) -> None:
    await service.logout(session, tokens, events, body.refresh_token)


RESET_ACCEPTED = "If an account uses this address, a link to reset its password is on its way."
RESEND_ACCEPTED = "If the address still needs verifying, a new link is on its way."


@router.post(
    "/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask for a password-reset email (202 whether or not the account exists)",
    dependencies=[Depends(rate_limit(Limit.PASSWORD_RESET_IP))],
)
async def request_password_reset(
    body: PasswordResetRequest,
    limiter: Limiter,
    database: AppDatabase,
    tokens: Tokens,
    settings: AppSettings,
    mailer: Mailer,
    background: BackgroundTasks,
) -> Accepted:
    """The request path does the same for every address (two limit counts, one background
    task); looking the account up, making the token and sending happen after the response."""
    await limiter.hit(Limit.PASSWORD_RESET_ACCOUNT, users.normalise_email(body.email))
    background.add_task(
        lifecycle.request_password_reset, database, tokens, mailer, settings, body.email
    )
    return Accepted(message=RESET_ACCEPTED)


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with the emailed token; every session of the account ends",
    dependencies=[Depends(rate_limit(Limit.ACCOUNT_TOKEN_IP))],
)
async def confirm_password_reset(
    body: PasswordResetConfirm,
    session: DbSession,
    hasher: Hasher,
    events: Events,
    settings: AppSettings,
    mailer: Mailer,
    background: BackgroundTasks,
) -> None:
    user = await lifecycle.reset_password(session, hasher, events, body.token, body.new_password)
    notice = emails.password_changed_email(settings, user.email, user.full_name, signed_out=True)
    background.add_task(emails.deliver, mailer, notice, emails.Message.PASSWORD_CHANGED)


@router.post(
    "/verify-email",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Verify an email address (or confirm a change of email) with the emailed token",
    dependencies=[Depends(rate_limit(Limit.ACCOUNT_TOKEN_IP))],
)
async def verify_email(
    body: VerifyEmailRequest,
    session: DbSession,
    settings: AppSettings,
    mailer: Mailer,
    background: BackgroundTasks,
) -> None:
    verified = await lifecycle.verify_email(session, body.token)
    if verified.previous_email is not None:
        user = verified.user
        notice = emails.email_changed_email(
            settings, verified.previous_email, user.email, user.full_name
        )
        background.add_task(emails.deliver, mailer, notice, emails.Message.EMAIL_CHANGED)


@router.post(
    "/verify-email/resend",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send the caller a new verification email (nothing is sent if already verified)",
)
async def resend_verification(
    user: CurrentUser,
    session: DbSession,
    limiter: Limiter,
    tokens: Tokens,
    settings: AppSettings,
    mailer: Mailer,
    background: BackgroundTasks,
) -> Accepted:
    await limiter.hit(Limit.VERIFY_RESEND_ACCOUNT, str(user.id))
    if not user.is_verified:
        token = await lifecycle.issue(session, tokens, settings, user, TokenPurpose.VERIFY_EMAIL)
        message = emails.verify_email(settings, user.email, user.full_name, token)
        background.add_task(emails.deliver, mailer, message, emails.Message.VERIFY_EMAIL)
    return Accepted(message=RESEND_ACCEPTED)
