"""Access tokens for tests: a token service with the test secret, the claims of a token, and
correctly signed tokens with claims of the test's choosing."""

from __future__ import annotations

import uuid

import jwt

from keel.core.models import utcnow
from keel.core.security.tokens import TokenService
from keel.settings import load_settings
from tests.conftest import TEST_JWT_SECRET


def tokens(**overrides: object) -> TokenService:
    """The app's token service with the test secret (`overrides`: other settings)."""
    return TokenService(load_settings(jwt_secret=TEST_JWT_SECRET, _env_file=None, **overrides))


def claims_of(token: str) -> dict[str, object]:
    """A token's claims, read without checking it (what a client could read)."""
    payload: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return payload


def signed(**changes: object) -> str:
    """A correctly signed access token with `changes` to its claims (None removes one)."""
    now = int(utcnow().timestamp())
    claims: dict[str, object] = {
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "typ": "access",
        "iss": "keel",
        "aud": "keel-api",
        "iat": now,
        "exp": now + 60,
    }
    claims.update(changes)
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None}, TEST_JWT_SECRET, algorithm="HS256"
    )
