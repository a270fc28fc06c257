from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
)

from keel.core.patching import PatchModel
from keel.core.types import RequestModel, Text
from keel.features.users.models import Role

PASSWORD_MIN = 8
PASSWORD_MAX = 128


def normalise_email(value: str) -> str:
    """The one spelling of an address that uniqueness and lookups compare.

    NFKC folds compatibility look-alikes (fullwidth letters, ligatures, a fullwidth at sign)
    into the characters they stand for, so they cannot register a second account that reads
    the same;
    lower-casing is what Keel always did (existing rows are stored that way).
    """
    return unicodedata.normalize("NFKC", value).strip().lower()


def _normalise_input(value: object) -> object:
    return normalise_email(value) if isinstance(value, str) else value


# Normalised before validation too, so a fullwidth at sign is read as the `@` it stands for.
Email = Annotated[EmailStr, BeforeValidator(_normalise_input), AfterValidator(normalise_email)]
Password = Annotated[str, Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
FullName = Annotated[str, Field(min_length=1, max_length=200)]


def password_differs_from_email(password: str, email: str | None) -> str:
    if email is not None and password.strip().lower() == email.strip().lower():
        raise ValueError("password must not be the same as the email address")
    return password


class UserResponse(BaseModel):
    """What anyone is shown of a user: never the password or its hash."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    roles: list[Role]
    is_active: bool
    is_verified: bool
    created_at: datetime
    updated_at: datetime


def user_fields(row: Any) -> dict[str, Any]:
    """A page's row (roles as one comma-separated string) as `UserResponse` dumps it."""
    return {
        "id": row.id,
        "email": row.email,
        "full_name": row.full_name,
        "roles": sorted(row.roles.split(",")) if row.roles else [],
        "is_active": row.is_active,
        "is_verified": row.is_verified,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


class UserCreate(RequestModel):
    email: Email
    password: Password
    full_name: FullName

    @field_validator("password")
    @classmethod
    def _not_the_email(cls, value: str, info: ValidationInfo) -> str:
        return password_differs_from_email(value, info.data.get("email"))


class MeUpdate(PatchModel):
    """PATCH /users/me: only the fields sent change; none of them may be null. A new password
    or a new email address comes with the current password."""

    dependent_required: ClassVar[dict[str, tuple[str, ...]]] = {
        "password": ("current_password",),
        "email": ("current_password",),
    }

    email: Email | None = Field(
        default=None, description="The new email address; needs `current_password`."
    )
    full_name: FullName | None = None
    password: Password | None = Field(
        default=None, description="The new password; needs `current_password`."
    )
    current_password: str | None = Field(
        default=None,
        min_length=1,
        max_length=PASSWORD_MAX,
        description="Required with `email` or `password`: a wrong one is a 403.",
    )


class AdminUserUpdate(PatchModel):
    """PATCH /users/{id} (admin): roles, activation and name; only the fields sent change."""

    full_name: FullName | None = None
    roles: Annotated[list[Role], Field(min_length=1)] | None = None
    is_active: Annotated[bool, Field(strict=True)] | None = None


class UserFilters(BaseModel):
    """The admin list's query parameters (`Annotated[UserFilters, Query()]`)."""

    email: Annotated[Text | None, Field(max_length=320, description="Email contains")] = None
    role: Role | None = None
    is_active: bool | None = None
