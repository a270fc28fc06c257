"""`CurrentPrincipal`, `CurrentUser` and `require_roles(...)`: how every feature learns who calls.

The access token comes from `Authorization: Bearer …`. The OAuth2 password scheme (rather than
plain HTTP bearer) makes the Authorize button in /docs log in with email and password.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, cast

from fastapi import BackgroundTasks, Depends
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from keel.core.dependencies import AppSettings, DbReads, DbSession, Mailer
from keel.core.errors import ForbiddenError, UnauthorizedError
from keel.core.security.tokens import TokenService
from keel.features.auth import emails, lifecycle, service
from keel.features.auth.service import Caller, Principal, UserPrincipal
from keel.features.users.models import Role, User

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a URL, not a secret
bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def _tokens(connection: HTTPConnection) -> TokenService:
    return cast(TokenService, connection.state.token_service)


def _required(access_token: str | None) -> str:
    if not access_token:
        raise UnauthorizedError("Not authenticated")
    return access_token


async def get_principal(
    connection: HTTPConnection,
    reads: DbReads,
    access_token: Annotated[str | None, Depends(bearer)],
) -> Principal:
    """The lean check every authenticated request can use: token, then one constant statement
    on the driver, with no session (an endpoint that needs one still asks for `DbSession`).

    The token service is read from the lifespan state here rather than through `Tokens`: on
    the hottest path, each dependency layer FastAPI resolves costs more than the lookup."""
    return await service.authenticate(reads, _tokens(connection), _required(access_token))


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
"""Who is calling (`.user`, a `Caller`), without the ORM, in one dependency: for endpoints
that only read the caller (`/users/me`)."""


async def get_user_principal(
    connection: HTTPConnection,
    session: DbSession,
    access_token: Annotated[str | None, Depends(bearer)],
) -> UserPrincipal:
    return await service.authenticate_user(session, _tokens(connection), _required(access_token))


CurrentUserPrincipal = Annotated[UserPrincipal, Depends(get_user_principal)]
"""The ORM `User` and the token's session: for endpoints that change the caller's account."""


async def get_current_user(principal: CurrentUserPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]
"""The caller as the ORM `User` (one statement, as `CurrentPrincipal`, plus ORM loading)."""


async def get_verified_user(user: CurrentUser, settings: AppSettings) -> User:
    """`CurrentUser`, refused with 403 EMAIL_NOT_VERIFIED while its address is unverified and
    KEEL_REQUIRE_VERIFIED_EMAIL is on (placing orders, uploading)."""
    return lifecycle.require_verified(settings, user)


VerifiedUser = Annotated[User, Depends(get_verified_user)]


async def get_optional_user(
    connection: HTTPConnection,
    reads: DbReads,
    access_token: Annotated[str | None, Depends(bearer)],
) -> Caller | None:
    """The caller on public endpoints: None when anonymous; a bad token is still a 401."""
    if not access_token:
        return None
    return (await service.authenticate(reads, _tokens(connection), access_token)).user


OptionalUser = Annotated[Caller | None, Depends(get_optional_user)]


def require_roles(*roles: Role) -> Callable[[User], Coroutine[Any, Any, User]]:
    """A dependency that lets through users holding any of `roles`, and 403s everyone else."""

    async def check(user: CurrentUser) -> User:
        if not any(user.has_role(role) for role in roles):
            raise ForbiddenError("You do not have permission to do this")
        return user

    return check


AdminUser = Annotated[User, Depends(require_roles(Role.ADMIN))]


def get_outbox(settings: AppSettings, mailer: Mailer, background: BackgroundTasks) -> emails.Outbox:
    return emails.Outbox(settings, mailer, background)


AccountMail = Annotated[emails.Outbox, Depends(get_outbox)]
"""Where an endpoint's account emails go: sent after its response."""
