from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keel.core.models import Base, Timestamps, UUIDPrimaryKey, str_enum


class Role(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


class User(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "users"
    # The admin list's order (oldest first), so a page is read, not sorted.
    __table_args__ = (Index("ix_users_created_at", "created_at", "id"),)

    # Stored lower-cased, so the unique constraint is case-insensitive on every database.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    # Proven by following the verification email; accounts older than verification are true.
    is_verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Joined eagerly: the current user is loaded with its roles in one statement per request.
    role_rows: Mapped[list[UserRole]] = relationship(
        cascade="all, delete-orphan", lazy="joined", order_by="UserRole.role"
    )

    @property
    def roles(self) -> list[Role]:
        return sorted(row.role for row in self.role_rows)

    def set_roles(self, roles: set[Role]) -> None:
        kept = [row for row in self.role_rows if row.role in roles]
        present = {row.role for row in kept}
        self.role_rows = kept + [UserRole(role=r) for r in sorted(roles) if r not in present]

    def has_role(self, role: Role) -> bool:
        return any(row.role == role for row in self.role_rows)

    def may_see(self, owner_id: uuid.UUID | None) -> bool:
        """The one visibility rule: a row is seen by its owner and by admins.

        Callers answer False with a 404, never a 403, so nobody learns that someone else's
        order, file or job exists. An ownerless row (`None`, e.g. a system job) is admins' only.
        """
        return (owner_id is not None and owner_id == self.id) or self.has_role(Role.ADMIN)


class UserRole(Base):
    __tablename__ = "user_roles"
    __table_args__ = (CheckConstraint("role IN ('customer', 'admin')", name="known_role"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(str_enum(Role, 20), primary_key=True)
