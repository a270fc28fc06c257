"""Signed, expiring upload URLs for the local backend (S3 signs its own).

The signature is a short JWT in the `token` query parameter, bound to one pending file id
and made with the app's JWT secret under an audience no access token carries, so neither
kind of token passes for the other.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import jwt

from keel.core.errors import ForbiddenError

AUDIENCE = "keel-upload"
ALGORITHM = "HS256"


def sign_upload(secret: str, file_id: uuid.UUID, expires_at: datetime) -> str:
    claims = {"sub": str(file_id), "aud": AUDIENCE, "exp": expires_at}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_upload(secret: str, token: str, file_id: uuid.UUID) -> None:
    """403 unless `token` was signed here for `file_id` and has not expired."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "aud", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise ForbiddenError("This upload URL has expired") from None
    except jwt.PyJWTError:
        raise ForbiddenError("This upload URL is not valid") from None
    if claims["sub"] != str(file_id):
        raise ForbiddenError("This upload URL is not valid")
