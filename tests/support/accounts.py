"""Accounts through the real API: register, log in, and make admins."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.features.users.models import UserRole
from tests.factories import UserCreateFactory

USER_FIELDS = {
    "id",
    "email",
    "full_name",
    "roles",
    "is_active",
    "is_verified",
    "created_at",
    "updated_at",
}
"""The SPEC's user object, every field of it and nothing else."""


@dataclass
class Account:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register(http: httpx.AsyncClient, **overrides: Any) -> tuple[dict[str, Any], str]:
    payload = UserCreateFactory.build(**overrides).model_dump()
    response = await http.post("/api/v1/auth/register", json=payload)
    assert response.status_code == 201, response.text
    return response.json(), payload["password"]


async def login(http: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    response = await http.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def signed_up(http: httpx.AsyncClient, **overrides: Any) -> Account:
    user, password = await register(http, **overrides)
    tokens = await login(http, user["email"], password)
    return Account(
        id=user["id"],
        email=user["email"],
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


async def make_admin(connection: AsyncConnection, account: Account) -> None:
    """Grant the admin role directly in the database (as `keel create-admin` would)."""
    await connection.execute(
        update(UserRole).where(UserRole.user_id == uuid.UUID(account.id)).values(role="admin")
    )
