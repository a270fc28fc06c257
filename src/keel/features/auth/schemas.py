from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from keel.core.types import RequestModel
from keel.features.users.schemas import Email, Password


class LoginRequest(RequestModel):
    email: Email
    password: str = Field(min_length=1, max_length=128)


class TokenForm(RequestModel):
    """The OAuth2 password form that /docs' Authorize button posts, field for field as
    FastAPI's `OAuth2PasswordRequestForm` declares it, but a `RequestModel`: no NUL anywhere."""

    grant_type: Annotated[str | None, Field(pattern=r"^password$")] = None
    username: str = Field(description="The account's email (OAuth2 names this field username).")
    password: str = Field(json_schema_extra={"format": "password"})
    scope: str = ""
    client_id: str | None = None
    client_secret: str | None = Field(default=None, json_schema_extra={"format": "password"})


class RefreshRequest(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 scheme name
    expires_in: int = Field(description="Seconds until the access token expires.")


OneTimeToken = Annotated[
    str,
    Field(min_length=1, max_length=200, description="The token from the emailed link's query."),
]


class PasswordResetRequest(RequestModel):
    email: Email


class PasswordResetConfirm(RequestModel):
    token: OneTimeToken
    new_password: Password


class VerifyEmailRequest(RequestModel):
    token: OneTimeToken


class Accepted(BaseModel):
    """A 202: the request was taken; what it leads to (an email) happens afterwards."""

    message: str
