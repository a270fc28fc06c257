from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from keel.core.dependencies import DbSession, Events, Hasher
from keel.core.pagination import PageBody, Pagination, page_route
from keel.features.auth import service as auth
from keel.features.auth.dependencies import AdminUser, CurrentPrincipal, CurrentUser
from keel.features.users import service
from keel.features.users.schemas import AdminUserUpdate, MeUpdate, UserFilters, UserResponse

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", summary="Read your own account")
async def read_me(user: CurrentUser) -> UserResponse:
    return UserResponse.model_validate(user)


@router.patch(
    "/me", summary="Change your name, or your email or password (with your current password)"
)
async def update_me(
    changes: MeUpdate,
    principal: CurrentPrincipal,
    session: DbSession,
    hasher: Hasher,
    events: Events,
) -> UserResponse:
    async def revoke_other_sessions() -> None:
        await auth.revoke_other_sessions(
            session, events, principal.user.id, keep=principal.session_id
        )

    user = await service.update_me(session, hasher, principal.user, changes, revoke_other_sessions)
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
