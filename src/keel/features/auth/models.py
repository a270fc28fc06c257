from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from keel.core.models import Base, Timestamps, UUIDPrimaryKey, str_enum


class AuthSession(UUIDPrimaryKey, Timestamps, Base):
    """One login: the family every refresh token rotated from it belongs to."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(50))


class RefreshToken(UUIDPrimaryKey, Base):
    """A refresh token, stored only as a SHA-256 hash; `used_at` marks it spent."""

    __tablename__ = "refresh_tokens"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class TokenPurpose(StrEnum):
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a name, not a secret
    VERIFY_EMAIL = "verify_email"
    CHANGE_EMAIL = "change_email"


class AccountToken(UUIDPrimaryKey, Base):
    """A one-time token sent by email (reset, verify, change of email): stored only as its
    SHA-256 hash, like refresh tokens; `used_at` marks it spent. `email` is the address the
    token was sent to: the one a verification proves, or the new one a change of email
    switches to."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('password_reset', 'verify_email', 'change_email')",
            name="known_purpose",
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[TokenPurpose] = mapped_column(str_enum(TokenPurpose, 20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
