"""The token check and principal lookup: the lean path (`/users/me`, one Core statement) and
the ORM path (`CurrentUser`) refuse exactly the same tokens, at once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Update, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.core.models import utcnow
from keel.core.reads import ConnectionReads
from keel.features.auth import service
from keel.features.auth.models import AuthSession
from keel.features.auth.service import Caller
from keel.features.users.models import Role, User, UserRole
from tests.support.accounts import USER_FIELDS, Account, signed_up
from tests.support.assertions import assert_error_body
from tests.support.tokens import claims_of, signed, tokens

ME = "/api/v1/users/me"  # the lean path: CurrentPrincipal


def orm_path(account: Account) -> str:
    return f"/api/v1/users/{account.id}"  # CurrentUser: the ORM User


PATHS = [pytest.param(lambda _: ME, id="lean"), pytest.param(orm_path, id="orm")]


async def get(client: httpx.AsyncClient, path: str, token: str) -> httpx.Response:
    return await client.get(path, headers={"Authorization": f"Bearer {token}"})


async def test_the_lean_path_loads_no_orm_object(
    account: Account, db_connection: AsyncConnection
) -> None:
    principal = await service.authenticate(
        ConnectionReads(db_connection), tokens(), account.access_token
    )
    assert type(principal.user) is Caller
    assert str(principal.user.id) == account.id
    assert principal.user.email == account.email
    assert principal.user.roles == (Role.CUSTOMER,)
    assert str(principal.session_id) == claims_of(account.access_token)["sid"]


async def test_me_from_the_lean_path_equals_the_orm_answer(
    client: httpx.AsyncClient, account: Account
) -> None:
    lean = await get(client, ME, account.access_token)
    orm = await get(client, orm_path(account), account.access_token)
    assert lean.status_code == orm.status_code == 200
    assert lean.json() == orm.json()
    assert set(lean.json()) == USER_FIELDS


async def test_several_roles_are_one_caller_with_sorted_roles(
    client: httpx.AsyncClient, account: Account, db_connection: AsyncConnection
) -> None:
    await db_connection.execute(
        insert(UserRole).values(user_id=uuid.UUID(account.id), role=Role.ADMIN)
    )
    body = (await get(client, ME, account.access_token)).json()
    assert body["roles"] == ["admin", "customer"]
    assert body["id"] == account.id


async def test_a_user_without_role_rows_is_still_the_caller(
    client: httpx.AsyncClient, account: Account, db_connection: AsyncConnection
) -> None:
    await db_connection.execute(
        UserRole.__table__.delete().where(UserRole.user_id == uuid.UUID(account.id))
    )
    response = await get(client, ME, account.access_token)
    assert response.status_code == 200
    assert response.json()["roles"] == []


@pytest.mark.parametrize("path", PATHS)
async def test_logout_stops_the_token_at_once(
    client: httpx.AsyncClient, account: Account, path: Callable[[Account], str]
) -> None:
    url = path(account)
    assert (await get(client, url, account.access_token)).status_code == 200
    logout = await client.post("/api/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert logout.status_code == 204
    assert_error_body(await get(client, url, account.access_token), 401, "UNAUTHORIZED")


def _sessions_of(account: Account) -> Update:
    return update(AuthSession).where(AuthSession.user_id == uuid.UUID(account.id))


def _revoke(account: Account) -> Update:
    return _sessions_of(account).values(revoked_at=utcnow(), revoked_reason="test")


def _expire(account: Account) -> Update:
    return _sessions_of(account).values(expires_at=utcnow() - timedelta(seconds=1))


def _deactivate(account: Account) -> Update:
    return update(User).where(User.id == uuid.UUID(account.id)).values(is_active=False)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "end",
    [
        pytest.param(_revoke, id="revoked-session"),
        pytest.param(_expire, id="expired-session"),
        pytest.param(_deactivate, id="deactivated-user"),
    ],
)
async def test_a_login_that_ended_stops_the_token_at_once(
    client: httpx.AsyncClient,
    account: Account,
    db_connection: AsyncConnection,
    path: Callable[[Account], str],
    end: Callable[[Account], Update],
) -> None:
    """The access token itself is still valid: the check reads the session and the user."""
    await db_connection.execute(end(account))
    assert_error_body(await get(client, path(account), account.access_token), 401, "UNAUTHORIZED")


async def test_a_deleted_user_is_refused(
    client: httpx.AsyncClient, account: Account, db_connection: AsyncConnection
) -> None:
    await db_connection.execute(User.__table__.delete().where(User.id == uuid.UUID(account.id)))
    assert_error_body(await get(client, ME, account.access_token), 401, "UNAUTHORIZED")


async def test_a_refresh_token_is_no_access_token(
    client: httpx.AsyncClient, account: Account
) -> None:
    response = await get(client, ME, account.refresh_token)
    error = assert_error_body(response, 401, "UNAUTHORIZED")
    assert "access" in error["message"]


async def test_a_live_session_of_another_user_is_refused(
    client: httpx.AsyncClient, account: Account
) -> None:
    other = await signed_up(client)
    token = signed(sub=account.id, sid=claims_of(other.access_token)["sid"])
    assert_error_body(await get(client, ME, token), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"sub": "\x00"}, id="nul-sub"),
        pytest.param({"sid": "0" * 8 + "\x00" + "0" * 27}, id="nul-sid"),
        pytest.param({"typ": "access\x00"}, id="nul-typ"),
        pytest.param({"sub": 2**63}, id="numeric-sub"),
        pytest.param({"sid": 2**63}, id="numeric-sid"),
        pytest.param({"jti": 2**63}, id="numeric-jti"),
        pytest.param({"sid": None}, id="no-sid"),
        pytest.param({"sid": ["x"]}, id="list-sid"),
        pytest.param({"exp": 2**63}, id="exp-2**63"),
        pytest.param({"exp": 2**64}, id="exp-2**64"),
        pytest.param({"exp": 1e308}, id="exp-1e308"),
        pytest.param({"iat": 2**63}, id="iat-2**63"),
        pytest.param({"typ": 2**63}, id="numeric-typ"),
        pytest.param({"typ": None}, id="no-typ"),
    ],
)
async def test_odd_claims_are_401_never_500(
    client: httpx.AsyncClient, account: Account, claims: dict[str, object]
) -> None:
    token = signed(**{"sub": account.id, "sid": claims_of(account.access_token)["sid"], **claims})
    assert_error_body(await get(client, ME, token), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer not-a-jwt", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "bearer\x7f"],
)
async def test_malformed_authorization_is_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get(ME, headers={"Authorization": header})
    assert_error_body(response, 401, "UNAUTHORIZED")


async def test_the_well_formed_control_token_is_accepted(
    client: httpx.AsyncClient, account: Account
) -> None:
    """The odd-claims cases above differ from this token in one claim each."""
    token = signed(sub=account.id, sid=claims_of(account.access_token)["sid"])
    response = await get(client, ME, token)
    assert response.status_code == 200
    assert response.json()["id"] == account.id
