"""The rules for accounts: uniqueness, password changes, and who may see or change whom.

Object-level authorization lives here, not in routers: a non-admin asking for someone else's
account gets 404 (the account's existence is not revealed), and admins cannot lock themselves
out by deactivating, demoting or deleting their own account.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.database import after_commit, reads_on
from keel.core.errors import ConflictError, ForbiddenError, NotFoundError, ValidationFailedError
from keel.core.events import EventHub, sessions_ended
from keel.core.pagination import PageBody, PageParams, fetch_page
from keel.core.patching import sent_fields
from keel.core.security.passwords import PasswordHasher
from keel.features.users import repository
from keel.features.users.models import Role, User
from keel.features.users.schemas import (
    AdminUserUpdate,
    MeUpdate,
    UserCreate,
    UserFilters,
    password_differs_from_email,
    user_fields,
)
from keel.features.users.schemas import normalise_email as _normalise_email


@dataclass(frozen=True, slots=True)
class MeChanged:
    """What a PATCH /users/me changed that has consequences beyond the row (the auth feature
    acts on them: sessions, notices, the confirmation link)."""

    password: bool
    requested_email: str | None  # the change waits until this address confirms it


class Access(StrEnum):
    READ = "read"
    MANAGE = "manage"


def _email_taken() -> ConflictError:
    return ConflictError("An account with this email already exists", details={"field": "email"})


async def create_user(
    session: AsyncSession,
    hasher: PasswordHasher,
    data: UserCreate,
    roles: set[Role] | None = None,
    *,
    verified: bool = False,
) -> User:
    """The 409 for a taken address stays (people need to know why they cannot register), but
    the password is hashed first either way, so a 409 takes as long as a 201 and the timing
    does not tell an enumerator more than the answer does to a rate-limited one."""
    password_hash = await hasher.hash(data.password)
    if await repository.get_by_email(session, data.email) is not None:
        raise _email_taken()
    user = User(
        email=data.email,
        full_name=data.full_name,
        password_hash=password_hash,
        is_active=True,
        is_verified=verified,
    )
    user.set_roles(roles or {Role.CUSTOMER})
    if not await repository.insert(session, user):  # a registration race lost
        raise _email_taken()
    return user


def normalise_email(email: str) -> str:
    """The spelling of an address that lookups compare (other features key limits on it)."""
    return _normalise_email(email)


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return await repository.get_by_email(session, email)


async def get_active(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    user = await repository.get(session, user_id)
    return user if user is not None and user.is_active else None


async def replace_password_hash(session: AsyncSession, user: User, new_hash: str) -> None:
    """Store a re-hash with current parameters (done after a successful login)."""
    user.password_hash = new_hash
    await repository.flush(session)


async def update_me(
    session: AsyncSession,
    hasher: PasswordHasher,
    user: User,
    changes: MeUpdate,
) -> MeChanged:
    """A new email is not written here: a confirmation goes to the new address, and the
    account switches only once it is followed (`change_email`). The 409 for a taken address
    comes now, as at registration, and again at confirmation if someone took it meanwhile."""
    sent = sent_fields(changes)
    changing_email = "email" in sent and changes.email != user.email
    if changing_email or "password" in sent:
        # A stolen access token alone must not be enough to take the account over.
        await _check_current_password(hasher, user, changes.current_password)
    if changing_email and await repository.get_by_email(session, str(changes.email)) is not None:
        raise _email_taken()
    if "full_name" in sent:
        user.full_name = str(changes.full_name)
    if "password" in sent:
        await _change_password(hasher, user, str(changes.password))
    if not await repository.save(session):
        raise _email_taken()
    return MeChanged("password" in sent, str(changes.email) if changing_email else None)


async def set_password(
    session: AsyncSession, hasher: PasswordHasher, user: User, new_password: str
) -> None:
    """A new password chosen without the old one (a password reset): same rules as a change."""
    await _change_password(hasher, user, new_password, loc=("body", "new_password"))
    await repository.flush(session)


async def mark_verified(session: AsyncSession, user: User) -> None:
    user.is_verified = True
    await repository.flush(session)


async def change_email(session: AsyncSession, user: User, new_email: str) -> bool:
    """Switch to a confirmed new address (so it is verified); False if it is taken now."""
    if await repository.get_by_email(session, new_email) not in (None, user):
        return False
    user.email = new_email
    user.is_verified = True
    return await repository.save(session)


async def _check_current_password(
    hasher: PasswordHasher, user: User, current_password: str | None
) -> None:
    """`sent_fields` has made sure the current password came with the change. A wrong one is
    a 403, not a 422: the body is well formed (as its schema promises), the proof is refused."""
    valid, _ = await hasher.verify(str(current_password), user.password_hash)
    if not valid:
        raise ForbiddenError(
            "The current password is wrong",
            details={"field": "current_password"},
        )


async def _change_password(
    hasher: PasswordHasher,
    user: User,
    new_password: str,
    loc: tuple[str, ...] = ("body", "password"),
) -> None:
    try:
        password_differs_from_email(new_password, user.email)
    except ValueError as exc:
        raise ValidationFailedError.field(loc, str(exc), "value_error") from None
    user.password_hash = await hasher.hash(new_password)


async def list_users(session: AsyncSession, filters: UserFilters, params: PageParams) -> PageBody:
    async with reads_on(session) as reads:
        page = await fetch_page(reads, repository.filtered(filters), params)
    return page.render([user_fields(row) for row in page.rows])


async def get_for(
    session: AsyncSession, actor: User, user_id: uuid.UUID, access: Access = Access.READ
) -> User:
    """The account `actor` may see (READ: admins, or the user themself) or manage (admins)."""
    if not actor.may_see(user_id):
        raise NotFoundError("User not found")
    if access is Access.MANAGE and not actor.has_role(Role.ADMIN):
        raise ForbiddenError("Only admins can manage accounts here; use /users/me")
    user = await repository.get(session, user_id)
    if user is None:
        raise NotFoundError("User not found")
    return user


async def admin_update(
    session: AsyncSession,
    events: EventHub,
    actor: User,
    user_id: uuid.UUID,
    changes: AdminUserUpdate,
) -> User:
    """A deactivation ends the account's open sockets (its tokens already stop working); so
    does a change of roles, so that an admin's `scope=all` socket does not outlive the role."""
    user = await get_for(session, actor, user_id, Access.MANAGE)
    sent = sent_fields(changes)
    if user.id == actor.id and (
        changes.is_active is False or ("roles" in sent and Role.ADMIN not in (changes.roles or []))
    ):
        raise ConflictError("Admins cannot deactivate or demote their own account")
    if changes.full_name is not None:
        user.full_name = changes.full_name
    ended: str | None = None
    if changes.roles is not None and set(changes.roles) != set(user.roles):
        ended = "roles_changed"
    if changes.roles is not None:
        user.set_roles(set(changes.roles))
    if changes.is_active is False and user.is_active:
        ended = "deactivated"
    if changes.is_active is not None:
        user.is_active = changes.is_active
    await repository.flush(session)
    if ended is not None:
        _close_sockets_after_commit(session, events, user.id, ended)
    return user


def _close_sockets_after_commit(
    session: AsyncSession, events: EventHub, user_id: uuid.UUID, reason: str
) -> None:
    event = sessions_ended(user_id, reason)
    after_commit(session, lambda: events.publish(event))


async def delete_user(
    session: AsyncSession, events: EventHub, actor: User, user_id: uuid.UUID
) -> None:
    user = await get_for(session, actor, user_id, Access.MANAGE)
    if user.id == actor.id:
        raise ConflictError("Admins cannot delete their own account")
    if not await repository.delete_unless_referenced(session, user):
        raise ConflictError("This account has records that must be kept; deactivate it instead")
    _close_sockets_after_commit(session, events, user_id, "deleted")
