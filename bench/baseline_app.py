"""The baseline: Keel's answers with nothing around them.

Each route does the work of Keel's route and nothing else, so the difference between the two
servers is Keel's middleware stack, exception handlers, dependency wiring and data layer, not
the cost of the endpoint itself:

- `GET /health` returns a pydantic model that serialises to `{"status": "ok"}`.
- `GET /api/v1/users/me` decodes the bearer token exactly as Keel does (PyJWT, HS256, expiry,
  issuer, audience and required claims checked; `typ` must be "access"), runs one asyncpg
  query for the user, its roles and its live login session, and returns Keel's `UserResponse`
  fields.

Deliberately no middleware, no settings library and no ORM. The only resource is an asyncpg
pool opened in the lifespan, configured from the environment by `bench/run.py`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import asyncpg  # type: ignore[import-untyped]
import jwt
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel

# Keel's own token rules (keel.core.security.tokens), repeated so the baseline imports nothing
# from Keel.
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "iss", "aud", "typ", "sid"]
POOL_SIZE = 10  # Keel's default KEEL_DB_POOL_SIZE

# The user, its roles (sorted, as Keel's relationship orders them) and the proof that the
# token's session is still live, in one statement: what Keel's
# `auth.repository.active_user_in_session` asks of the database.
USER_IN_SESSION = """
SELECT u.id, u.email, u.full_name, u.is_active, u.created_at, u.updated_at,
       coalesce(array_agg(r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL), '{}')
           AS roles
FROM users AS u
JOIN auth_sessions AS s
  ON s.user_id = u.id AND s.id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3
LEFT JOIN user_roles AS r ON r.user_id = u.id
WHERE u.id = $1 AND u.is_active
GROUP BY u.id
"""


@dataclass(frozen=True)
class TokenRules:
    """What a token must be signed with and carry; the same values Keel is started with."""

    secret: str
    issuer: str
    audience: str


@dataclass(frozen=True)
class Config:
    """Read from the environment that `bench/run.py` gives the baseline."""

    database_url: str
    tokens: TokenRules

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Config:
        """Fail at start-up, naming the variable, rather than on the first request."""
        try:
            return cls(
                database_url=environment["BASELINE_DATABASE_URL"],
                tokens=TokenRules(
                    secret=environment["BASELINE_JWT_SECRET"],
                    issuer=environment["BASELINE_JWT_ISSUER"],
                    audience=environment["BASELINE_JWT_AUDIENCE"],
                ),
            )
        except KeyError as missing:
            raise RuntimeError(f"the baseline needs the environment variable {missing}") from None


class Health(BaseModel):
    status: str = "ok"


class Role(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


class UserResponse(BaseModel):
    """Keel's `UserResponse`: the same fields and types, so serialisation costs the same."""

    id: uuid.UUID
    email: str
    full_name: str
    roles: list[Role]
    is_active: bool
    created_at: datetime
    updated_at: datetime


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """Open the pool before serving (as Keel's lifespan does) so no request pays for connecting.

    /health needs none of it, but it only answers once the pool is up, so the harness's
    readiness check also proves the database is reachable.
    """
    config = Config.from_environment(os.environ)
    pool = await asyncpg.create_pool(config.database_url, min_size=POOL_SIZE, max_size=POOL_SIZE)
    try:
        yield {"pool": pool, "tokens": config.tokens}
    finally:
        await pool.close()


app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def unauthorized() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid or expired token")


def token_subject(token: str, rules: TokenRules) -> tuple[uuid.UUID, uuid.UUID]:
    """(user id, session id) from a valid access token; 401 for anything else, as Keel does."""
    try:
        payload = jwt.decode(
            token,
            rules.secret,
            algorithms=[ALGORITHM],
            audience=rules.audience,
            issuer=rules.issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        user_id, session_id = uuid.UUID(payload["sub"]), uuid.UUID(payload["sid"])
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
        raise unauthorized() from None
    if payload["typ"] != "access":
        raise unauthorized()
    return user_id, session_id


@app.get("/health", response_model=Health)
async def health() -> Health:
    return Health()


@app.get("/api/v1/users/me")
async def read_me(request: Request, token: Annotated[str | None, Depends(bearer)]) -> UserResponse:
    if not token:
        raise unauthorized()
    user_id, session_id = token_subject(token, request.state.tokens)
    pool = request.state.pool
    row = await pool.fetchrow(USER_IN_SESSION, user_id, session_id, datetime.now(UTC))
    if row is None:
        raise unauthorized()
    return UserResponse.model_validate(dict(row))
