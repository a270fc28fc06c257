from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from keel.core.dependencies import DbSession, Events, Hasher, Tokens
from keel.core.pagination import PageBody, Pagination, page_route
from keel.features.auth import lifecycle
from keel.features.auth.dependencies import (
    AccountMail,
    AdminUser,
    CurrentPrincipal,
    CurrentUser,
    CurrentUserPrincipal,
)
from keel.features.users import service
from keel.features.users.schemas import AdminUserUpdate, MeUpdate, UserFilters, UserResponse

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", summary="Read your own account")
async def read_me(principal: CurrentPrincipal) -> UserResponse:
    return UserResponse.model_validate(principal.user)  # the token check's row: no ORM load


@router.patch(
    "/me",
    summary="Change my name, password or email (a new email switches once it is confirmed)",
)
async def update_me(
    changes: MeUpdate,
    principal: CurrentUserPrincipal,
    session: DbSession,
    hasher: Hasher,
    events: Events,
    tokens: Tokens,
    outbox: AccountMail,
) -> UserResponse:
    user = await lifecycle.update_me(session, hasher, events, tokens, outbox, principal, changes)
    return UserResponse.model_validate(user)


@page_route(router, UserResponse, "List users (admin)")
async def list_users(
    _: AdminUser, session: DbSession, page: Pagination, filters: Annotated[UserFilters, Query()]
) -> PageBody:
    return await service.list_users(session, filters, page)


@router.get("/{user_id:uuid}", summary="Read a user (admin, or the user themself)")
async def read_user(user_id: uuid.UUID, actor: CurrentUser, session: DbSession) -> UserResponse:
    return UserResponse.model_validate(await service.get_for(session, actor, user_id))


@router.patch("/{user_id:uuid}", summary="Change a user's roles, activation or name (admin)")
async def update_user(
    user_id: uuid.UUID,
    changes: AdminUserUpdate,
    actor: CurrentUser,
    session: DbSession,
    events: Events,
) -> UserResponse:
    user = await service.admin_update(session, events, actor, user_id, changes)
    return UserResponse.model_validate(user)


@router.delete(
    "/{user_id:uuid}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a user (admin)"
)
async def delete_user(
    user_id: uuid.UUID, actor: CurrentUser, session: DbSession, events: Events
) -> None:
    await service.delete_user(session, events, actor, user_id)
