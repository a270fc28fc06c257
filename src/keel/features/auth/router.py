from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Form, status
from pydantic import ValidationError

from keel.core.dependencies import DbSession, Events, Hasher, Limiter, Mailer, Tokens, rate_limit
from keel.core.errors import ValidationFailedError
from keel.core.ratelimit import Limit
from keel.features.auth import service
from keel.features.auth.emails import send_welcome_email
from keel.features.auth.schemas import LoginRequest, RefreshRequest, TokenForm, TokenPair
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
    mailer: Mailer,
    background: BackgroundTasks,
) -> UserResponse:
    user = await users.create_user(session, hasher, body)
    background.add_task(send_welcome_email, mailer, user.email, user.full_name)
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
