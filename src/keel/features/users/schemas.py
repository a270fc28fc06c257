from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
)

from keel.core.patching import PatchModel
from keel.features.users.models import Role

PASSWORD_MIN = 8
PASSWORD_MAX = 128


def _normalise_email(value: str) -> str:
    return value.strip().lower()


Email = Annotated[EmailStr, AfterValidator(_normalise_email)]
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
    created_at: datetime
    updated_at: datetime


class UserCreate(BaseModel):
    email: Email
    password: Password
    full_name: FullName

    @field_validator("password")
    @classmethod
    def _not_the_email(cls, value: str, info: ValidationInfo) -> str:
        return password_differs_from_email(value, info.data.get("email"))


class MeUpdate(PatchModel):
    """PATCH /users/me: only the fields sent change; none of them may be null. A new password
    comes with the current one (and the current one only with a new one)."""

    dependent_required: ClassVar[dict[str, tuple[str, ...]]] = {
        "password": ("current_password",),
        "current_password": ("password",),
    }

    email: Email | None = None
    full_name: FullName | None = None
    password: Password | None = Field(default=None, description="The new password.")
    current_password: str | None = Field(
        default=None,
        min_length=1,
        max_length=PASSWORD_MAX,
        description="Required with `password`: a wrong one is a 403.",
    )


class AdminUserUpdate(PatchModel):
    """PATCH /users/{id} (admin): roles, activation and name; only the fields sent change."""

    full_name: FullName | None = None
    roles: Annotated[list[Role], Field(min_length=1)] | None = None
    is_active: Annotated[bool, Field(strict=True)] | None = None


class UserFilters(BaseModel):
    email: str | None = None
    role: Role | None = None
    is_active: bool | None = None
