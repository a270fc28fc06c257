"""`CurrentUser` and `require_roles(...)`: how every feature learns who is calling.

The access token comes from `Authorization: Bearer …`. The OAuth2 password scheme (rather than
plain HTTP bearer) makes the Authorize button in /docs log in with email and password.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from keel.core.dependencies import AppSettings, DbSession, Tokens
from keel.core.errors import ForbiddenError, UnauthorizedError
from keel.features.auth import lifecycle, service
from keel.features.auth.service import Principal
from keel.features.users.models import Role, User

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a URL, not a secret
bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def get_principal(
    session: DbSession,
    tokens: Tokens,
    access_token: Annotated[str | None, Depends(bearer)],
) -> Principal:
    if not access_token:
        raise UnauthorizedError("Not authenticated")
    return await service.authenticate(session, tokens, access_token)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_current_user(principal: CurrentPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_verified_user(user: CurrentUser, settings: AppSettings) -> User:
    """`CurrentUser`, refused with 403 EMAIL_NOT_VERIFIED while its address is unverified and
    KEEL_REQUIRE_VERIFIED_EMAIL is on (placing orders, uploading)."""
    return lifecycle.require_verified(settings, user)


VerifiedUser = Annotated[User, Depends(get_verified_user)]


async def get_optional_user(
    session: DbSession,
    tokens: Tokens,
    access_token: Annotated[str | None, Depends(bearer)],
) -> User | None:
    """The caller on public endpoints: None when anonymous; a bad token is still a 401."""
    if not access_token:
        return None
    return (await service.authenticate(session, tokens, access_token)).user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]


def require_roles(*roles: Role) -> Callable[[User], Coroutine[Any, Any, User]]:
    """A dependency that lets through users holding any of `roles`, and 403s everyone else."""

    async def check(user: CurrentUser) -> User:
        if not any(user.has_role(role) for role in roles):
            raise ForbiddenError("You do not have permission to do this")
        return user

    return check


AdminUser = Annotated[User, Depends(require_roles(Role.ADMIN))]
