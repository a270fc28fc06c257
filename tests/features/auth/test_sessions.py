"""Refresh rotation, reuse detection, logout, and revocation that takes effect at once."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.core.events import SESSIONS_ENDED
from keel.features.auth.models import RefreshToken
from keel.features.users.models import User
from tests.support.accounts import Account, login
from tests.support.assertions import assert_error_body
from tests.support.routes import RECEIVED_EVENTS

REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(REFRESH, json={"refresh_token": token})


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get(ME, headers={"Authorization": f"Bearer {access_token}"})


async def test_refresh_rotates_the_pair(client: httpx.AsyncClient, account: Account) -> None:
    response = await refresh(client, account.refresh_token)
    assert response.status_code == 200
    pair = response.json()
    assert pair["refresh_token"] != account.refresh_token
    assert pair["access_token"] != account.access_token
    assert (await me(client, pair["access_token"])).status_code == 200
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_refresh_tokens_are_stored_only_as_hashes(
    client: httpx.AsyncClient, account: Account, db_connection: AsyncConnection
) -> None:
    stored = (await db_connection.execute(select(RefreshToken.token_hash))).scalars().all()
    assert stored
    assert all(len(value) == 64 for value in stored)
    assert account.refresh_token not in stored


async def test_reusing_a_spent_refresh_token_revokes_the_family(
    client: httpx.AsyncClient, account: Account
) -> None:
    rotated = (await refresh(client, account.refresh_token)).json()
    reuse = await refresh(client, account.refresh_token)
    error = assert_error_body(reuse, 401, "UNAUTHORIZED")
    assert "revoked" in error["message"]
    # Every token of that login is dead now, including the legitimately rotated ones.
    assert_error_body(await refresh(client, rotated["refresh_token"]), 401, "UNAUTHORIZED")
    assert_error_body(await me(client, rotated["access_token"]), 401, "UNAUTHORIZED")
    assert_error_body(await me(client, account.access_token), 401, "UNAUTHORIZED")


async def test_reuse_closes_the_familys_sockets(
    client: httpx.AsyncClient, account: Account
) -> None:
    """The revocation commits with the 401, and so does its event: the family's open
    WebSockets close as they do on logout."""
    key = uuid.uuid4().hex
    await client.post(f"/_test/events/{key}")
    await refresh(client, account.refresh_token)
    assert_error_body(await refresh(client, account.refresh_token), 401, "UNAUTHORIZED")
    ended = [e for e in RECEIVED_EVENTS[key] if e.type == SESSIONS_ENDED]
    assert [(str(e.user_id), e.data["reason"]) for e in ended] == [(account.id, "refresh_reuse")]


async def test_reuse_revokes_only_that_family(client: httpx.AsyncClient, account: Account) -> None:
    other_login = await login(client, account.email, account.password)
    await refresh(client, account.refresh_token)
    await refresh(client, account.refresh_token)  # reuse: kills the first login only
    assert (await me(client, other_login["access_token"])).status_code == 200
    assert (await refresh(client, other_login["refresh_token"])).status_code == 200


async def test_logout_revokes_the_session(client: httpx.AsyncClient, account: Account) -> None:
    response = await client.post(LOGOUT, json={"refresh_token": account.refresh_token})
    assert response.status_code == 204
    assert response.content == b""
    assert_error_body(await refresh(client, account.refresh_token), 401, "UNAUTHORIZED")
    assert_error_body(await me(client, account.access_token), 401, "UNAUTHORIZED")


async def test_logout_with_a_forged_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(LOGOUT, json={"refresh_token": "forged.token.value"})
    assert_error_body(response, 401, "UNAUTHORIZED")


async def test_logout_twice_is_idempotent(client: httpx.AsyncClient, account: Account) -> None:
    first = await client.post(LOGOUT, json={"refresh_token": account.refresh_token})
    second = await client.post(LOGOUT, json={"refresh_token": account.refresh_token})
    assert (first.status_code, second.status_code) == (204, 204)


async def test_unknown_but_well_signed_refresh_token_is_refused(
    client: httpx.AsyncClient, account: Account, db_connection: AsyncConnection
) -> None:
    await db_connection.execute(RefreshToken.__table__.delete())
    assert_error_body(await refresh(client, account.refresh_token), 401, "UNAUTHORIZED")


async def test_deactivated_user_is_locked_out_at_once(
    client: httpx.AsyncClient, account: Account, db_connection: AsyncConnection
) -> None:
    await db_connection.execute(
        update(User).where(User.id == uuid.UUID(account.id)).values(is_active=False)
    )
    assert_error_body(await me(client, account.access_token), 401, "UNAUTHORIZED")
    assert_error_body(await refresh(client, account.refresh_token), 401, "UNAUTHORIZED")
    response = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert_error_body(response, 401, "UNAUTHORIZED")


async def test_deleted_user_is_locked_out_at_once(
    client: httpx.AsyncClient, account: Account, db_connection: AsyncConnection
) -> None:
    await db_connection.execute(User.__table__.delete().where(User.id == uuid.UUID(account.id)))
    assert_error_body(await me(client, account.access_token), 401, "UNAUTHORIZED")
    assert_error_body(await refresh(client, account.refresh_token), 401, "UNAUTHORIZED")
