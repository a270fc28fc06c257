"""Contract test: schemathesis drives every operation in the OpenAPI schema, in-process.

It reads the schema from the app itself, so endpoints added later are covered without editing
this file. A failure is any 5xx, or a response whose status, content type or body the schema
does not document.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from keel.core.config import Settings, load_settings
from keel.core.database import Database, committing
from keel.core.security.passwords import PasswordHasher
from keel.features.users import service as users
from keel.features.users.models import Role
from keel.features.users.schemas import UserCreate
from keel.main import create_app
from tests.conftest import TEST_JWT_SECRET
from tests.support.app import serve
from tests.support.databases import fresh_database_url

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


ADMIN_EMAIL = "contract-admin@example.com"
ADMIN_PASSWORD = "contract-admin-password"


def contract_settings() -> Settings:
    """A database of its own (the contract run commits real rows), limits out of the way."""
    directory = Path(tempfile.mkdtemp(prefix="keel-contract-"))
    return load_settings(
        environment="test",
        database_url=fresh_database_url("contract", directory),
        auto_migrate=True,
        jwt_secret=TEST_JWT_SECRET,
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
        rate_limit_enabled=False,
        _env_file=None,
    )


async def admin_token(app: FastAPI) -> str:
    """Log in an admin, so the run reaches past 401 into every operation's real work."""
    async with serve(app) as http:  # a lifespan of its own; it migrates the database
        data = UserCreate(email=ADMIN_EMAIL, password=ADMIN_PASSWORD, full_name="Contract")
        database = Database.from_settings(app_settings)
        try:
            async with database.sessionmaker() as session, committing(session):
                hasher = PasswordHasher(time_cost=1, memory_kib=1024)
                await users.create_user(session, hasher, data, roles={Role.ADMIN, Role.CUSTOMER})
        finally:
            await database.dispose()
        response = await http.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


# Built at import: schemathesis parametrizes at collection time.
app_settings = contract_settings()
APP = create_app(app_settings)
AUTHORIZATION = {"Authorization": f"Bearer {asyncio.run(admin_token(APP))}"}
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_contract(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS, headers=AUTHORIZATION)
