"""Argon2 hashes: never plain text, and upgraded on login when the parameters change."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.core.security.passwords import PasswordHasher
from keel.features.users.models import User
from tests.conftest import MakeSettings
from tests.support.accounts import login, register
from tests.support.app import isolated_app, serve


def app_with_cost(
    make_settings: MakeSettings, connection: AsyncConnection, time_cost: int, memory_kib: int
) -> FastAPI:
    settings = make_settings(password_hash_time_cost=time_cost, password_hash_memory_kib=memory_kib)
    return isolated_app(settings, connection)


async def stored_hash(connection: AsyncConnection, user_id: str) -> str:
    result = await connection.execute(
        select(User.password_hash).where(User.id == uuid.UUID(user_id))
    )
    return str(result.scalar_one())


async def test_outdated_hash_is_upgraded_on_login(
    make_settings: MakeSettings, db_connection: AsyncConnection
) -> None:
    old = app_with_cost(make_settings, db_connection, 1, 1024)
    async with serve(old) as http:
        user, password = await register(http)
    before = await stored_hash(db_connection, user["id"])
    assert before.startswith("$argon2id$")
    assert "m=1024,t=1" in before
    assert password not in before

    new = app_with_cost(make_settings, db_connection, 2, 2048)
    async with serve(new) as http:
        await login(http, user["email"], password)
        after = await stored_hash(db_connection, user["id"])
        await login(http, user["email"], password)  # the new hash verifies
    assert "m=2048,t=2" in after
    assert after != before


async def test_wrong_password_never_upgrades(
    make_settings: MakeSettings, db_connection: AsyncConnection
) -> None:
    old = app_with_cost(make_settings, db_connection, 1, 1024)
    async with serve(old) as http:
        user, _ = await register(http)
    before = await stored_hash(db_connection, user["id"])
    new = app_with_cost(make_settings, db_connection, 2, 2048)
    async with serve(new) as http:
        response = await http.post(
            "/api/v1/auth/login", json={"email": user["email"], "password": "not-it-at-all"}
        )
    assert response.status_code == 401
    assert await stored_hash(db_connection, user["id"]) == before


async def test_unknown_account_verification_fails() -> None:
    hasher = PasswordHasher(time_cost=1, memory_kib=1024)
    assert await hasher.verify("anything", None) == (False, None)
    hashed = await hasher.hash("correct horse")
    assert (await hasher.verify("correct horse", hashed))[0] is True
    assert (await hasher.verify("wrong horse", hashed))[0] is False
