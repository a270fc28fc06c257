from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, status

from keel.core.dependencies import AppSettings, DbSession, Events, Hasher, Mailer, Tokens
from keel.core.pagination import PageBody, Pagination, page_route
from keel.features.auth import emails, lifecycle
from keel.features.auth import service as auth
from keel.features.auth.dependencies import (
    AdminUser,
    CurrentPrincipal,
    CurrentUser,
    CurrentUserPrincipal,
)
from keel.features.auth.models import TokenPurpose
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
    settings: AppSettings,
    mailer: Mailer,
    background: BackgroundTasks,
) -> UserResponse:
    user = principal.user

    async def password_changed() -> None:
        await auth.revoke_other_sessions(session, events, user.id, keep=principal.session_id)
        notice = emails.password_changed_email(
            settings, user.email, user.full_name, signed_out=False
        )
        background.add_task(emails.deliver, mailer, notice, emails.Message.PASSWORD_CHANGED)

    async def email_change_requested(new_email: str) -> None:
        token = await lifecycle.issue(
            session, tokens, settings, user, TokenPurpose.CHANGE_EMAIL, new_email
        )
        confirm = emails.verify_email(settings, new_email, user.full_name, token, changing=True)
        background.add_task(emails.deliver, mailer, confirm, emails.Message.VERIFY_EMAIL)

    updated = await service.update_me(
        session, hasher, user, changes, password_changed, email_change_requested
    )
    return UserResponse.model_validate(updated)


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
